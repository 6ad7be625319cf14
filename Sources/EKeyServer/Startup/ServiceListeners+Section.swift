public import EKeyConfig

extension ServiceListeners {
    /// The listeners a service section names: `<section>.listen` with `<section>.tls`
    /// (``ServiceStartup/serverTLS(_:key:)``: reloaded when its files change, `nil` for
    /// `tls: none`) and `<section>.admin_listen`, with the limits of `<section>.connections`.
    public init<Section: ServiceSection>(_ section: Section) throws {
        self.init(
            host: section.listen.host, port: section.listen.port,
            tls: try ServiceStartup.serverTLS(section.tls, key: "\(Section.name).tls"),
            adminHost: section.adminListen.host, adminPort: section.adminListen.port, connections: section.connections)
    }
}
