import EKeyIssuer
import EKeyServer

// Entry point of `ekey-issuer`: the E-Key issuer (`POST /token`, docs/spec/issuer.md).
await ServiceStartup.main(Issuer.self)
