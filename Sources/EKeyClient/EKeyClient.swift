// The Swift client SDK: DPoP keys, proofs, token requests and calls.
