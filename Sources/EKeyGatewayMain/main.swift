import EKeyGateway
import EKeyServer

// Entry point of `ekey-gateway`: the E-Key verifier gateway (docs/spec/gateway.md).
await ServiceStartup.main(Gateway.self)
