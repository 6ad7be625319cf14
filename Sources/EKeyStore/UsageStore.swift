// The usage and replay store interface (DESIGN.md §5 step 5).
