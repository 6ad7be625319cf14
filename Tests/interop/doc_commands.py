"""The example commands of README.md and docs/ (not docs/spec/), for test_doc_commands.py.

A command is a line of a fenced code block tagged `sh`, `bash`, `shell` or `console`:
- in `sh`/`bash`/`shell` blocks every non-blank line that is not a comment, with its
  `\\` continuation lines;
- in `console` blocks only lines starting with `$ ` (and their continuations); the lines
  after one, up to the next `$ ` line, are its expected output.

Fences may sit in a list item (indented) or a block quote (`> `). Run this file to list
what it finds: `python Tests/interop/doc_commands.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
SHELL_TAGS = {"sh", "bash", "shell"}
COMMAND_TAGS = SHELL_TAGS | {"console"}

# An opening or closing fence: optional indentation and `>` quote markers, then ``` or ~~~.
FENCE = re.compile(r"^(?P<prefix>[ \t]*(?:>[ \t]?)*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")


@dataclass(frozen=True)
class Fence:
    """A fenced code block: where it opens (1-based line), its tag (may be ''), its lines."""

    file: str
    line: int
    tag: str
    lines: tuple[str, ...]


@dataclass
class Command:
    """One example command: `text` as the doc writes it (continuations joined, without a
    trailing comment), where it starts, the block's tag, and for `console` blocks the
    expected output lines."""

    file: str
    line: int
    tag: str
    text: str
    output: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.text)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def doc_files(repo: Path = REPO) -> list[Path]:
    """README.md and every docs/**/*.md except docs/spec/, in a stable order."""
    files = [repo / "README.md"]
    files += sorted(p for p in (repo / "docs").rglob("*.md")
                    if "spec" not in p.relative_to(repo / "docs").parts[:1])
    return [p for p in files if p.is_file()]


def fences(path: Path, repo: Path = REPO) -> Iterator[Fence]:
    """Every fenced code block of a Markdown file."""
    name = str(path.relative_to(repo))
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        prefix, marker = opening["prefix"], opening["fence"]
        start, body = i + 1, []
        i += 1
        while i < len(lines):
            closing = FENCE.match(lines[i])
            if closing and closing["fence"].startswith(marker[0]) and len(closing["fence"]) >= len(marker) \
                    and not closing["info"]:
                break
            line = lines[i]
            # Strip the block's indentation / quote prefix (as far as the line has it).
            stripped_prefix = prefix.rstrip()
            if line.startswith(prefix):
                line = line[len(prefix):]
            elif stripped_prefix and line.startswith(stripped_prefix):
                line = line[len(stripped_prefix):]
            body.append(line)
            i += 1
        yield Fence(name, start, opening["info"].lower(), tuple(body))
        i += 1


def strip_comment(text: str) -> str:
    """`text` without a trailing shell comment (a `#` after whitespace, outside quotes)."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
            elif char == "\\" and quote == '"':
                continue
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip()
    return text.rstrip()


def _join(lines: list[str]) -> str:
    """Continuation lines (ending in `\\`) joined with single spaces, comments dropped."""
    parts = []
    for line in lines:
        line = strip_comment(line)
        if line.endswith("\\"):
            line = line[:-1]
        parts.append(line.strip())
    return " ".join(part for part in parts if part)


def commands_in(fence: Fence) -> Iterator[Command]:
    """The commands of one fenced block (nothing for blocks of other tags)."""
    if fence.tag not in COMMAND_TAGS:
        return
    lines = list(fence.lines)
    i = 0
    current: Command | None = None
    while i < len(lines):
        raw = lines[i]
        if fence.tag == "console":
            if not raw.startswith("$ "):
                if current is not None:
                    current.output.append(raw)
                i += 1
                continue
            first = raw[2:]
        else:
            if not raw.strip() or raw.lstrip().startswith("#"):
                i += 1
                continue
            first = raw
        start = i
        group = [first]
        while strip_comment(group[-1]).endswith("\\") and i + 1 < len(lines):
            i += 1
            group.append(lines[i])
        current = Command(fence.file, fence.line + 1 + start, fence.tag, _join(group))
        yield current
        i += 1


def all_fences(repo: Path = REPO) -> list[Fence]:
    return [fence for path in doc_files(repo) for fence in fences(path, repo)]


def all_commands(repo: Path = REPO) -> list[Command]:
    """Every example command, in document order (README.md first, then docs/ by name)."""
    return [command for fence in all_fences(repo) for command in commands_in(fence)]


if __name__ == "__main__":
    for command in all_commands():
        print(command)
        for line in command.output:
            print("    |", line)
