public import EKeyProtocol
public import Hummingbird
public import HTTPTypes
public import NIOCore

extension Response {
    /// A JSON response with `Cache-Control: no-store` unless `headers` says otherwise.
    public static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        Response(HTTPResponse.json(value, status: status, headers: headers))
    }

    /// A response of a head and a whole body.
    public init(_ parts: (HTTPResponse, ByteBuffer)) {
        self.init(status: parts.0.status, headers: parts.0.headerFields, body: .init(byteBuffer: parts.1))
    }

    /// The error body of docs/spec/gateway.md (`{"error", "error_description"}`), with its status
    /// and, where the error carries one, the `WWW-Authenticate` challenge for `scheme`.
    public static func error(_ error: EKeyError, scheme: AuthorizationScheme? = nil, challenge: Bool = false) -> Response {
        Response(HTTPResponse.error(error, scheme: scheme, challenge: challenge))
    }
}

extension HTTPResponse {
    /// ``Response/json(_:status:headers:)`` as a head and a body, for a response written
    /// on the event loop.
    public static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> (HTTPResponse, ByteBuffer) {
        json(serialized: value.serializedBytes(), status: status, headers: headers)
    }

    /// ``json(_:status:headers:)`` of a body already written as JSON bytes.
    public static func json(serialized body: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> (HTTPResponse, ByteBuffer) {
        var fields = headers
        fields[.contentType] = "application/json"
        if fields[.cacheControl] == nil {
            fields[.cacheControl] = "no-store"
        }
        return (HTTPResponse(status: status, headerFields: fields), ByteBuffer(bytes: body))
    }

    /// ``Response/error(_:scheme:challenge:)`` as a head and a body, for a response written
    /// on the event loop.
    public static func error(_ error: EKeyError, scheme: AuthorizationScheme? = nil, challenge: Bool = false) -> (HTTPResponse, ByteBuffer) {
        var headers: HTTPFields = [:]
        if challenge {
            for value in error.wwwAuthenticate(scheme: scheme) {
                headers.append(HTTPField(name: .wwwAuthenticate, value: value))
            }
        }
        return json(error.body, status: HTTPResponse.Status(code: error.status), headers: headers)
    }
}
