/// Sections of the stack files the live tests write for the services they run as real
/// processes: whole lines at the left margin, to interpolate at the start of a line.
public enum StackYAML {
    /// `jwks:` for a publisher on loopback `port` (admin listener on `adminPort`) with the
    /// server certificate of ``TemporaryFiles/withDevelopmentPKI(prefix:)``, accepting
    /// registrations from `issuer` and administration from `admin`.
    public static func jwks(port: Int, adminPort: Int, issuer: String, admin: String, cacheMaxAge: String) -> String {
        """
        jwks:
          listen: 127.0.0.1:\(port)
          admin_listen: 127.0.0.1:\(adminPort)
          tls: \(TemporaryFiles.serverTLSYAML)
          authorized_issuers: ["\(issuer)"]
          admins: ["\(admin)"]
          cache_max_age: \(cacheMaxAge)
          retain: 1h
        """
    }
}
