// The issuer service (`POST /token`, DESIGN.md §3) is assembled here.
