// The JWKS publisher (DESIGN.md §4) is assembled here.
