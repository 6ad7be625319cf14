// The JWKS publisher (docs/spec/publisher.md) is assembled here.
