public import EKeyProtocol
public import Hummingbird
public import HTTPTypes
import NIOCore

extension Response {
    /// A JSON response with `Cache-Control: no-store` unless `headers` says otherwise.
    public static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        if fields[.cacheControl] == nil {
            fields[.cacheControl] = "no-store"
        }
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: value.serializedBytes())))
    }

    /// The error body of docs/spec/gateway.md (`{"error", "error_description"}`), with its status
    /// and, where the error carries one, the `WWW-Authenticate` challenge for `scheme`.
    public static func error(_ error: EKeyError, scheme: AuthorizationScheme? = nil, challenge: Bool = false) -> Response {
        let (head, body) = HTTPResponse.error(error, scheme: scheme, challenge: challenge)
        return Response(status: head.status, headers: head.headerFields, body: .init(byteBuffer: body))
    }
}

extension HTTPResponse {
    /// ``Response/error(_:scheme:challenge:)`` as a head and a body, for a response written
    /// on the event loop.
    public static func error(_ error: EKeyError, scheme: AuthorizationScheme? = nil, challenge: Bool = false) -> (HTTPResponse, ByteBuffer) {
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store"]
        if challenge {
            for value in error.wwwAuthenticate(scheme: scheme) {
                headers.append(HTTPField(name: .wwwAuthenticate, value: value))
            }
        }
        return (HTTPResponse(status: HTTPResponse.Status(code: error.status), headerFields: headers), ByteBuffer(bytes: error.body.serializedBytes()))
    }
}
