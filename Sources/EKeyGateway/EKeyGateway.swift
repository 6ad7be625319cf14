// The verifier gateway (DESIGN.md §5) is assembled here.
