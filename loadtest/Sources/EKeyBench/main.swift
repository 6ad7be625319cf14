print("ekey-bench")
