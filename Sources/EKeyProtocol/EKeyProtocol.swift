// The protocol shared by every E-Key process: JOSE, tokens, DPoP, capabilities, errors.
