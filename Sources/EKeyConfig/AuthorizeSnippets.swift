/// Proxy configuration that uses `gateway.authorize`, written from one source: docs/authorize.md
/// shows ``nginx(authorize:listen:upstream:certificateFolder:)`` with its example values (a test
/// compares them and runs that nginx), and `ekey up --authorize` prints it for the local stack.
public enum AuthorizeSnippets {
    /// The `http {}` block content for nginx `auth_request` in front of `upstream`: TLS on
    /// `listen` with `server.crt`, `server.key` and client certificates checked against
    /// `ca.crt` from `certificateFolder`, asking the authorize listener at `authorize` (`host:port`).
    public static func nginx(authorize: String, listen: String, upstream: String, certificateFolder: String) -> String {
        """
        # E-Key verify-only mode behind nginx: every request under / is checked by ekey-gateway's
        # authorize listener before nginx forwards it. Goes in the http {} block.
        upstream ekey_authorize {
            server \(authorize);            # gateway.authorize.listen
            # Idle connections kept per worker: at least the requests it authorizes at once, so
            # that a busy moment does not open new connections to E-Key.
            keepalive 64;
        }

        server {
            listen \(listen) ssl http2;
            ssl_protocols          TLSv1.2 TLSv1.3;   # nginx before 1.23.4 leaves TLS 1.3 out
            ssl_certificate        \(certificateFolder)/server.crt;
            ssl_certificate_key    \(certificateFolder)/server.key;
            # Client certificates, for mTLS-bound tokens: nginx validates them, E-Key compares them.
            ssl_client_certificate \(certificateFolder)/ca.crt;
            ssl_verify_client      optional;

            location / {
                auth_request /_ekey_authorize;
                auth_request_set $ekey_sub    $upstream_http_x_ekey_sub;
                auth_request_set $ekey_trace  $upstream_http_x_ekey_trace;
                auth_request_set $ekey_action $upstream_http_x_ekey_action;
                auth_request_set $ekey_use    $upstream_http_x_ekey_use;
                auth_request_set $ekey_nonce  $upstream_http_dpop_nonce;
                auth_request_set $ekey_status $upstream_status;
                auth_request_set $ekey_challenge $upstream_http_www_authenticate;

                # auth_request relays a 401 with its WWW-Authenticate; the server nonce of a
                # use_dpop_nonce refusal is copied here.
                add_header DPoP-Nonce $ekey_nonce always;
                # A 403 loses its challenge (insufficient_scope), and any other refusal (400 bad
                # path, 404 no route, 503 store down) reaches nginx as 500: answer E-Key's.
                error_page 403 = @ekey_forbidden;
                error_page 500 = @ekey_refused;

                # The upstream gets the verified identity, not the credentials.
                proxy_set_header X-EKey-Sub    $ekey_sub;
                proxy_set_header X-EKey-Trace  $ekey_trace;
                proxy_set_header X-EKey-Action $ekey_action;
                proxy_set_header X-EKey-Use    $ekey_use;
                proxy_set_header Authorization "";
                proxy_set_header DPoP          "";
                proxy_pass \(upstream);   # your API
            }

            location = /_ekey_authorize {
                internal;
                proxy_pass http://ekey_authorize;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
                proxy_pass_request_body off;
                proxy_set_header Content-Length "";
                # The request being authorized, exactly as the client sent it.
                proxy_set_header X-Original-Method $request_method;
                proxy_set_header X-Original-URI    $request_uri;
                proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
                # Never pass a client's own copies of the headers E-Key trusts from nginx.
                proxy_set_header X-Forwarded-Method      "";
                proxy_set_header X-Forwarded-Uri         "";
                proxy_set_header X-Forwarded-Client-Cert "";
            }

            location @ekey_forbidden {
                add_header WWW-Authenticate $ekey_challenge always;
                return 403;
            }

            location @ekey_refused {
                if ($ekey_status = 400) { return 400; }
                if ($ekey_status = 404) { return 404; }
                if ($ekey_status = 503) { return 503; }
                return 500;
            }
        }

        """
    }
}
