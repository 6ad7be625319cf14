import EKeyJWKS
import EKeyServer

// Entry point of `ekey-jwks`: the E-Key JWKS publisher (docs/spec/publisher.md).
await ServiceStartup.main(Publisher.self)
