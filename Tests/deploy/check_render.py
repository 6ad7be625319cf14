#!/usr/bin/env python3
"""Checks a `kubectl kustomize` render of E-Key (issue 8) and the Prometheus rules file.

usage: check_render.py [--config-out FILE] [--env-out FILE] RENDER.yaml [RENDER.yaml ...]
                       [--rules RULES.yaml] [--crd-schemas SCHEMAS.yaml]
                       [--compose COMPOSE_CONFIG.yaml] [--compose-monitoring CONFIG.yaml] [--stack STACK.yaml]

For every render: the Deployments, Services and HPAs named in docs/operations.md exist with
their labels; the HPAs are autoscaling/v2, target the issuer and gateway Deployments and
scale on CPU utilisation (60-80 %) of a request of at least 500m, not on memory, and those
Deployments set no replicas (the HPA owns it); the issuer's startup probe is /readyz with
at least 120 s for the key registration; every container (init containers too) has readiness and
liveness probes, resource requests and limits, runAsNonRoot, readOnlyRootFilesystem,
allowPrivilegeEscalation false and capabilities drop ALL, and the pod a RuntimeDefault
seccomp profile; the E-Key pods run as uid 10001 and carry Prometheus scrape
annotations for their admin port, whose probes they use; there are PodDisruptionBudgets
and NetworkPolicies; every namespaced object is in the namespace of the E-Key Deployments
(an overlay's own objects too), and every Secret and ConfigMap a pod uses (volumes,
projected sources, envFrom, env valueFrom, imagePullSecrets) exists in the render in the
pod's namespace, as an object or as the secretName of a cert-manager Certificate (except
optional ones, ekey-store, and in a render that provides no Secret at all, the TLS Secrets
the base documents as created before applying); custom resources validate against the
JSON Schemas of --crd-schemas (one must exist for each custom kind); with cert-manager
Certificates, each mounted Secret comes from one, server certificates (/etc/ekey/tls) have
usage server auth and the Service's DNS names plus the public host, client certificates
(/etc/ekey/client) usage client auth and one SPIFFE ID (the issuer's listed in
jwks.authorized_issuers), all from one issuer; with Prometheus Operator objects, one
ServiceMonitor per Service on port admin /metrics with the part-of pod label, and one
PrometheusRule whose groups equal the --rules file; the ConfigMap holds stack.yaml (written to --config-out for
`ekey config check`; --env-out collects the EKEY_* values the Deployments set). The rules
file is YAML with the expected alert names. The compose check reads the output of
`docker-compose config`: the services of issue 8, only the issuer and gateway ports
published, health checks on each service's admin /readyz (the port stack.yaml gives),
depends_on conditions, the pki job, and no build-time secrets. The monitoring check reads the
output of `docker-compose config` with compose/docker-compose.monitoring.yml added: prometheus
scrapes the three admin ports with the rules file loaded, grafana gets the datasource and the
dashboard, every mounted file exists, both on 127.0.0.1 only.
Prints one line per check and "N passed, N failed" at the end; exits 1 on any failure.
"""
import json
import os
import sys
from urllib.parse import urlparse

import yaml

SERVICES = {"ekey-issuer": 9101, "ekey-gateway": 9102, "ekey-jwks": 9103}
SCALED = ("ekey-issuer", "ekey-gateway")
ALERTS = {"EKeyReplayRateHigh", "EKeyInvalidProofSpike", "EKeyKeyRegistrationFailures", "EKeyStoreUnavailable",
          "EKeyGatewayLatencyHigh", "EKeyUpstreamErrors", "EKeyNoReadyReplicas", "EKeyCertificateExpiresSoon"}

passed = 0
failed = 0


def check(condition, what):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}")


def workloads(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield d, d["spec"]["template"]["spec"], d["spec"]["template"]["metadata"]
        elif d["kind"] == "CronJob":
            t = d["spec"]["jobTemplate"]["spec"]["template"]
            yield d, t["spec"], t["metadata"]


def cpu_cores(quantity):
    """A Kubernetes CPU quantity ("500m", "1", 2) in cores; 0 when absent."""
    if quantity is None:
        return 0
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def effective(container, pod, key):
    value = (container.get("securityContext") or {}).get(key)
    if value is None:
        value = (pod.get("securityContext") or {}).get(key)
    return value


# Kinds that have no namespace; every other kind in a render is namespaced.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "ClusterIssuer", "CustomResourceDefinition",
                  "PriorityClass", "StorageClass", "PersistentVolume", "IngressClass", "RuntimeClass",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"}
# Secrets the base references but does not ship (k8s/base/kustomization.yaml): created before
# applying a render that provides no Secret itself. ekey-store (redis-cluster overlay) holds a
# password and is always created by hand.
EXTERNAL_SECRETS = {"ekey-jwks-tls", "ekey-issuer-tls", "ekey-gateway-tls", "ekey-issuer-client",
                    "ekey-gateway-client", "ekey-dpop-nonce", "ekey-store"}
ALWAYS_EXTERNAL = {"ekey-store"}


def namespace(obj):
    return (obj.get("metadata") or {}).get("namespace")


def describe(obj):
    return f"{obj['kind']} {obj['metadata']['name']}"


def app_namespace(docs):
    """The namespace of the E-Key Deployments (None when they have none or disagree)."""
    found = {namespace(d) for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] in SERVICES}
    return found.pop() if len(found) == 1 else None


def check_namespaces(tag, docs):
    """Every namespaced object is in the namespace of the E-Key Deployments: an object without
    one lands in the namespace of the kubectl context, where no pod of E-Key looks for it."""
    found = sorted({str(namespace(d)) for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] in SERVICES})
    ns = app_namespace(docs)
    check(ns is not None, f"{tag}: the E-Key Deployments share one namespace ({', '.join(found)})")
    if ns is None:
        return
    check(any(d["kind"] == "Namespace" and d["metadata"]["name"] == ns for d in docs),
          f"{tag}: the render creates Namespace {ns}")
    for d in docs:
        if d["kind"] in CLUSTER_SCOPED:
            check(namespace(d) is None, f"{tag}: {describe(d)} is cluster-scoped and has no namespace")
        else:
            check(namespace(d) == ns, f"{tag}: {describe(d)} is in namespace {ns}"
                  + ("" if namespace(d) == ns else f" (it has {namespace(d) or 'none: the current namespace at apply time'})"))


def pod_references(pod):
    """(kind, name, optional, where) of every Secret and ConfigMap a pod spec uses."""
    refs = []
    for v in pod.get("volumes", []):
        if "secret" in v:
            refs.append(("Secret", v["secret"]["secretName"], v["secret"].get("optional", False), f"volume {v['name']}"))
        if "configMap" in v:
            refs.append(("ConfigMap", v["configMap"]["name"], v["configMap"].get("optional", False), f"volume {v['name']}"))
        for source in (v.get("projected") or {}).get("sources", []):
            for key, kind in (("secret", "Secret"), ("configMap", "ConfigMap")):
                if key in source:
                    refs.append((kind, source[key]["name"], source[key].get("optional", False), f"projected volume {v['name']}"))
    for s in pod.get("imagePullSecrets", []):
        refs.append(("Secret", s["name"], False, "imagePullSecrets"))
    for c in pod.get("initContainers", []) + pod["containers"] + pod.get("ephemeralContainers", []):
        for e in c.get("envFrom", []):
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if key in e:
                    refs.append((kind, e[key]["name"], e[key].get("optional", False), f"container {c['name']} envFrom"))
        for e in c.get("env", []):
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                ref = (e.get("valueFrom") or {}).get(key)
                if ref:
                    refs.append((kind, ref["name"], ref.get("optional", False), f"container {c['name']} env {e['name']}"))
    return refs


def provided(docs):
    """(kind, namespace, name) of the Secrets and ConfigMaps a render creates, directly or as
    the spec.secretName of a cert-manager Certificate (which writes it in its own namespace)."""
    made = {}
    for d in docs:
        if d["kind"] in ("Secret", "ConfigMap"):
            made[(d["kind"], namespace(d), d["metadata"]["name"])] = describe(d)
        elif d["kind"] == "Certificate" and d.get("apiVersion", "").startswith("cert-manager.io/"):
            made[("Secret", namespace(d), d["spec"]["secretName"])] = f"Certificate {d['metadata']['name']}"
    return made


def check_references(tag, docs):
    """Every Secret and ConfigMap a pod mounts or reads exists in the render in the pod's
    namespace. Exceptions: optional references; and, in a render that provides no Secret at
    all (k8s/, base), the Secrets the base documents as created before applying."""
    made = provided(docs)
    makes_secrets = any(kind == "Secret" for kind, _, _ in made)
    for obj, pod, _ in workloads(docs):
        ns = namespace(obj)
        for kind, name, optional, where in pod_references(pod):
            what = f"{tag}: {describe(obj)} ({where}): {kind} {name}"
            if (kind, ns, name) in made:
                check(True, f"{what} exists in namespace {ns} ({made[(kind, ns, name)]})")
                continue
            elsewhere = sorted(str(n) for k, n, m in made if k == kind and m == name)
            if elsewhere:
                check(False, f"{what} is MISSING from namespace {ns}: the render puts it in "
                      + ", ".join("no namespace (the current one at apply time)" if n == "None" else n for n in elsewhere))
            elif optional:
                check(True, f"{what} is optional and not in the render")
            elif kind == "Secret" and (name in ALWAYS_EXTERNAL or (name in EXTERNAL_SECRETS and not makes_secrets)):
                check(True, f"{what} is created outside the render (documented)")
            else:
                check(False, f"{what} is MISSING from the render")
    for d in docs:
        if d["kind"] != "Certificate":
            continue
        ref = d["spec"].get("issuerRef", {})
        kind = ref.get("kind", "Issuer")
        target = [i for i in docs if i["kind"] == kind and i["metadata"]["name"] == ref.get("name")
                  and (kind == "ClusterIssuer" or namespace(i) == namespace(d))]
        check(bool(target) or kind == "ClusterIssuer",
              f"{tag}: {describe(d)}: its {kind} {ref.get('name')} "
              + ("is in the render" if target else "is cluster-wide, created outside the render" if kind == "ClusterIssuer"
                 else f"is MISSING from namespace {namespace(d)}"))
    for d in docs:
        secret = ((d.get("spec") or {}).get("ca") or {}).get("secretName") if d["kind"] in ("Issuer",) else None
        if secret:
            check(("Secret", namespace(d), secret) in made,
                  f"{tag}: {describe(d)}: its CA Secret {secret} is made in namespace {namespace(d)}")


def is_custom(obj):
    """A custom resource: its API group has a dot and is not one of Kubernetes' own (*.k8s.io)."""
    group = obj.get("apiVersion", "").rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def check_custom_resources(tag, docs, schemas):
    """kubernetes-validate knows only the core kinds; custom resources (cert-manager,
    Prometheus Operator) are validated against the JSON Schemas of --crd-schemas."""
    custom = [d for d in docs if is_custom(d)]
    if not custom:
        return
    if schemas is None:
        check(False, f"{tag}: {len(custom)} custom resources, but no --crd-schemas to validate them against")
        return
    import jsonschema  # in the deploy venv (kubernetes-validate depends on it)
    for d in custom:
        key = f"{d['apiVersion']}/{d['kind']}"
        schema = schemas.get(key)
        if schema is None:
            check(False, f"{tag}: {describe(d)}: no schema for {key} in the CRD schemas file")
            continue
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(d), key=lambda e: list(e.absolute_path))
        check(not errors, f"{tag}: {describe(d)} is valid against the {key} CRD schema"
              + "".join(f"\n        at {'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors))


def mounted_secrets(docs):
    """{Deployment name: {mount path: Secret name}} of the E-Key Deployments."""
    mounts = {}
    for obj, pod, _ in workloads(docs):
        if obj["kind"] != "Deployment" or obj["metadata"]["name"] not in SERVICES:
            continue
        volumes = {v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        paths = {}
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                if m["name"] in volumes:
                    paths[m["mountPath"]] = volumes[m["name"]]
        mounts[obj["metadata"]["name"]] = paths
    return mounts


def check_certificates(tag, docs, stack):
    """With cert-manager Certificates in the render: each Secret an E-Key service mounts at
    /etc/ekey/tls is a server certificate for its Service's DNS names (and the public host
    of issuer_url / public_origin), each at /etc/ekey/client a client certificate whose URI
    SAN is the SPIFFE ID the publisher expects (jwks.authorized_issuers for the issuer); all
    of them come from one issuer, so every Secret's ca.crt verifies the others' certificates."""
    certificates = {(namespace(d), d["spec"].get("secretName")): d for d in docs
                    if d["kind"] == "Certificate" and d.get("apiVersion", "").startswith("cert-manager.io/")}
    if not certificates:
        return
    ns = app_namespace(docs)
    overrides = {}
    for d in docs:
        if d["kind"] == "Deployment" and d["metadata"]["name"] in SERVICES:
            for c in d["spec"]["template"]["spec"]["containers"]:
                overrides.update({e["name"]: e.get("value") for e in c.get("env", []) if "value" in e})
    public = {}
    if stack:
        public["ekey-issuer"] = urlparse(overrides.get("EKEY_ISSUER_ISSUER_URL", stack["issuer"]["issuer_url"])).hostname
        public["ekey-gateway"] = urlparse(overrides.get("EKEY_GATEWAY_ROUTES_0_PUBLIC_ORIGIN",
                                                        stack["gateway"]["routes"][0]["public_origin"])).hostname
    expected_ids = {
        "ekey-issuer": set((stack or {}).get("jwks", {}).get("authorized_issuers", [])),
        "ekey-gateway": None,   # any SPIFFE ID: the JWKS route does not authorise by identity
    }
    issuers = set()
    for service, paths in sorted(mounted_secrets(docs).items()):
        for path, secret in sorted(paths.items()):
            cert = certificates.get((ns, secret))
            if path == "/etc/ekey/dpop":
                continue   # the DPoP nonce secret is random bytes, not a certificate
            check(cert is not None, f"{tag}: {service}: the Secret {secret} at {path} comes from a Certificate")
            if cert is None:
                continue
            spec = cert["spec"]
            ref = spec.get("issuerRef", {})
            issuers.add((ref.get("kind", "Issuer"), ref.get("name")))
            usages = set(spec.get("usages") or [])
            if path == "/etc/ekey/tls":
                names = set(spec.get("dnsNames") or [])
                wanted = {service, f"{service}.{ns}.svc"} | ({public[service]} if public.get(service) else set())
                check("server auth" in usages and "client auth" not in usages,
                      f"{tag}: Certificate {cert['metadata']['name']}: usage server auth ({sorted(usages)})")
                check(wanted <= names, f"{tag}: Certificate {cert['metadata']['name']}: DNS names include {sorted(wanted)}"
                      + ("" if wanted <= names else f" (missing {sorted(wanted - names)})"))
            elif path == "/etc/ekey/client":
                uris = set(spec.get("uris") or [])
                spiffe = {u for u in uris if u.startswith("spiffe://")}
                check("client auth" in usages and "server auth" not in usages,
                      f"{tag}: Certificate {cert['metadata']['name']}: usage client auth ({sorted(usages)})")
                ids = expected_ids.get(service)
                check(len(spiffe) == 1 and (ids is None or spiffe <= ids),
                      f"{tag}: Certificate {cert['metadata']['name']}: one SPIFFE ID in the URI SAN {sorted(spiffe)}"
                      + ("" if ids is None else f", listed in jwks.authorized_issuers {sorted(ids)}"))
    admins = set((stack or {}).get("jwks", {}).get("admins", []))
    for cert in certificates.values():
        uris = set(cert["spec"].get("uris") or [])
        if uris & admins:
            check("client auth" in set(cert["spec"].get("usages") or []),
                  f"{tag}: Certificate {cert['metadata']['name']} for jwks.admins {sorted(uris & admins)}: usage client auth")
    check(len(issuers) == 1, f"{tag}: the mounted certificates share one issuer, so each ca.crt verifies the others ({sorted(issuers)})")


def check_monitoring(tag, docs, rules):
    """With Prometheus Operator objects in the render: a ServiceMonitor per E-Key Service on
    its admin port and /metrics, carrying the pod labels the alerts select on, and a
    PrometheusRule whose groups are those of the rules file (one source of truth)."""
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    prometheus_rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    dashboards = [d for d in docs if d["kind"] == "ConfigMap"
                  and ((d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1")]
    for d in dashboards:
        # Grafana's sidecar loads each data key as a dashboard: JSON with a uid and queries.
        try:
            boards = [json.loads(text) for text in (d.get("data") or {}).values()]
        except ValueError as error:
            boards, problem = [], str(error)
        else:
            problem = None
        check(boards and all(b.get("uid") and any(t.get("expr") for p in b.get("panels", []) for t in p.get("targets", []))
                             for b in boards),
              f"{tag}: ConfigMap {d['metadata']['name']} (grafana_dashboard) holds dashboard JSON with a uid and queries"
              + (f" ({problem})" if problem else ""))
    if not monitors and not prometheus_rules:
        return
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] in SERVICES}
    for name, service in sorted(services.items()):
        labels = service["metadata"].get("labels") or {}
        ports = {p.get("name") for p in service["spec"].get("ports", [])}
        selecting = [m for m in monitors if namespace(m) == namespace(service)
                     and (m["spec"].get("selector") or {}).get("matchLabels")
                     and all(labels.get(k) == v for k, v in m["spec"]["selector"]["matchLabels"].items())]
        check(len(selecting) == 1, f"{tag}: one ServiceMonitor selects Service {name} ({[m['metadata']['name'] for m in selecting]})")
        for m in selecting:
            endpoints = m["spec"].get("endpoints", [])
            check(len(endpoints) == 1 and endpoints[0].get("port") == "admin" and "admin" in ports
                  and endpoints[0].get("path", "/metrics") == "/metrics" and endpoints[0].get("scheme", "http") == "http",
                  f"{tag}: ServiceMonitor {m['metadata']['name']} scrapes http /metrics on the Service port admin")
            check("app.kubernetes.io/part-of" in (m["spec"].get("podTargetLabels") or []),
                  f"{tag}: ServiceMonitor {m['metadata']['name']} copies app.kubernetes.io/part-of onto targets (EKeyTargetDown)")
    check(len(prometheus_rules) == 1, f"{tag}: one PrometheusRule ({len(prometheus_rules)})")
    if rules is not None:
        for r in prometheus_rules:
            check(r["spec"] == {"groups": rules["groups"]},
                  f"{tag}: PrometheusRule {r['metadata']['name']} carries exactly the groups of the rules file")


def check_render(path, config_out, env_out, rules=None, schemas=None):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    tag = path.rsplit("/", 1)[-1]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    check(len(docs) > 0, f"{tag}: render has objects ({len(docs)})")

    for name in SERVICES:
        for kind in ("Deployment", "Service"):
            obj = by_kind.get(kind, {}).get(name)
            labels = (obj or {}).get("metadata", {}).get("labels", {})
            check(obj is not None and labels.get("app.kubernetes.io/name") == name
                  and labels.get("app.kubernetes.io/part-of") == "ekey",
                  f"{tag}: {kind} {name} exists with app.kubernetes.io/name and part-of labels")
        check(name in by_kind.get("PodDisruptionBudget", {}), f"{tag}: PodDisruptionBudget for {name}")

    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    for name in SCALED:
        hpa = hpas.get(name)
        check(hpa is not None and hpa["apiVersion"] == "autoscaling/v2", f"{tag}: HPA {name} is autoscaling/v2")
        if hpa is None:
            continue
        ref = hpa["spec"]["scaleTargetRef"]
        check(ref.get("kind") == "Deployment" and ref.get("name") == name and ref.get("apiVersion") == "apps/v1"
              and name in by_kind.get("Deployment", {}), f"{tag}: HPA {name} targets Deployment {name}")
        targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"].get("metrics", [])
                   if m.get("type") == "Resource"}
        cpu = targets.get("cpu") or {}
        check(cpu.get("type") == "Utilization" and 60 <= cpu.get("averageUtilization", 0) <= 80,
              f"{tag}: HPA {name} scales on CPU utilisation between 60 and 80 % ({cpu.get('averageUtilization')})")
        # Memory is not load-proportional (a heap grown by a burst stays): no memory target.
        check("memory" not in targets, f"{tag}: HPA {name} does not scale on memory")
        check(hpa["spec"].get("minReplicas", 1) >= 2, f"{tag}: HPA {name} keeps at least 2 replicas")
        deployment = by_kind.get("Deployment", {}).get(name) or {}
        check("replicas" not in deployment.get("spec", {}),
              f"{tag}: Deployment {name} sets no replicas (its HPA owns the count; apply would reset it)")
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        request = cpu_cores(((containers[0].get("resources") or {}).get("requests") or {}).get("cpu")) if containers else 0
        check(request >= 0.5, f"{tag}: Deployment {name} requests at least 500m CPU, the base of its HPA's target ({request})")

    for obj, pod, meta in workloads(docs):
        wname = f"{obj['kind']} {obj['metadata']['name']}"
        check((pod.get("securityContext") or {}).get("seccompProfile", {}).get("type") == "RuntimeDefault"
              or all((c.get("securityContext") or {}).get("seccompProfile", {}).get("type") == "RuntimeDefault"
                     for c in pod["containers"]),
              f"{tag}: {wname}: seccompProfile RuntimeDefault")
        for c in pod.get("initContainers", []) + pod["containers"]:
            cname = f"{wname}/{c['name']}"
            init = c in pod.get("initContainers", [])
            if not init:
                check("readinessProbe" in c and "livenessProbe" in c, f"{tag}: {cname}: readiness and liveness probes")
            res = c.get("resources") or {}
            check({"cpu", "memory"} <= set(res.get("requests", {})) and {"cpu", "memory"} <= set(res.get("limits", {})),
                  f"{tag}: {cname}: cpu and memory requests and limits")
            sc = c.get("securityContext") or {}
            check(effective(c, pod, "runAsNonRoot") is True, f"{tag}: {cname}: runAsNonRoot")
            uid = effective(c, pod, "runAsUser")
            check(uid is None or uid != 0, f"{tag}: {cname}: runAsUser is not 0")
            check(sc.get("readOnlyRootFilesystem") is True, f"{tag}: {cname}: readOnlyRootFilesystem")
            check(sc.get("allowPrivilegeEscalation") is False, f"{tag}: {cname}: allowPrivilegeEscalation false")
            check(sc.get("privileged") in (None, False), f"{tag}: {cname}: not privileged")
            check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{tag}: {cname}: capabilities drop ALL")
        name = obj["metadata"]["name"]
        if obj["kind"] == "Deployment" and name in SERVICES:
            port = SERVICES[name]
            c = pod["containers"][0]
            check(effective(c, pod, "runAsUser") == 10001, f"{tag}: {wname}: runs as uid 10001")
            ann = meta.get("annotations") or {}
            check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(port)
                  and ann.get("prometheus.io/path") == "/metrics", f"{tag}: {wname}: Prometheus scrape annotations on :{port}/metrics")
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            probes = [(c.get("readinessProbe") or {}).get("httpGet") or {}, (c.get("livenessProbe") or {}).get("httpGet") or {}]
            check(ports.get("admin") == port and all(p.get("port") in ("admin", port) for p in probes)
                  and probes[0].get("path") == "/readyz" and probes[1].get("path") == "/healthz",
                  f"{tag}: {wname}: probes /readyz and /healthz on the admin port {port}")
            if name == "ekey-issuer":
                # /readyz is 503 until the signing key is registered; /healthz answers at once.
                startup = c.get("startupProbe") or {}
                allowed = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
                check((startup.get("httpGet") or {}).get("path") == "/readyz"
                      and (startup.get("httpGet") or {}).get("port") in ("admin", port) and allowed >= 120,
                      f"{tag}: {wname}: startup probe /readyz on the admin port allows >= 120 s for key registration ({allowed} s)")

    check_namespaces(tag, docs)
    check_references(tag, docs)
    check_custom_resources(tag, docs, schemas)

    policies = by_kind.get("NetworkPolicy", {})
    check(any(p["spec"].get("podSelector") == {} and "Ingress" in p["spec"].get("policyTypes", [])
              and not p["spec"].get("ingress") for p in policies.values()),
          f"{tag}: a default-deny ingress NetworkPolicy")
    jwks = [p for p in policies.values()
            if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "ekey-jwks"]
    check(len(jwks) == 1 and all("from" in rule for rule in jwks[0]["spec"].get("ingress", [])),
          f"{tag}: ekey-jwks reachable only from selected pods")

    maps = [m for m in by_kind.get("ConfigMap", {}).values() if "stack.yaml" in (m.get("data") or {})]
    check(len(maps) == 1, f"{tag}: one ConfigMap carries stack.yaml")
    if maps:
        stack = yaml.safe_load(maps[0]["data"]["stack.yaml"])
        check({"store", "issuer", "gateway", "jwks"} <= set(stack), f"{tag}: stack.yaml has store, issuer, gateway and jwks")
        check(all(stack[s]["admin_listen"].startswith("0.0.0.0:") for s in ("issuer", "gateway", "jwks")),
              f"{tag}: admin listeners bind 0.0.0.0 (probes and scraping reach them)")
        overrides = {}
        for name in SERVICES:
            deployment = by_kind.get("Deployment", {}).get(name) or {}
            for c in deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                overrides.update({e["name"]: e.get("value") for e in c.get("env", [])})
        issuer_url = overrides.get("EKEY_ISSUER_ISSUER_URL", stack["issuer"]["issuer_url"])
        gateway_issuer = overrides.get("EKEY_GATEWAY_ISSUER", stack["gateway"]["issuer"])
        check(issuer_url == gateway_issuer,
              f"{tag}: gateway.issuer equals issuer.issuer_url after EKEY_* overrides ({issuer_url})")
        if config_out:
            with open(config_out, "w") as f:
                f.write(maps[0]["data"]["stack.yaml"])
    check_certificates(tag, docs, stack if maps else None)
    check_monitoring(tag, docs, rules)
    if env_out:
        with open(env_out, "a") as f:
            for name in SERVICES:
                deployment = by_kind.get("Deployment", {}).get(name)
                for c in (deployment or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                    for e in c.get("env", []):
                        if e["name"].startswith("EKEY_") and "value" in e:
                            f.write(f"{name} {e['name']}={e['value']}\n")


def check_compose(path, stack_path):
    with open(path) as f:
        compose = yaml.safe_load(f)
    with open(stack_path) as f:
        stack = yaml.safe_load(f)
    services = compose.get("services", {})
    expected = {"redis", "pki", "ekey-jwks", "ekey-issuer", "ekey-gateway", "legacy-api"}
    check(expected <= set(services), f"compose: services {sorted(expected)} (missing: {sorted(expected - set(services))})")
    published = {name: [str(p.get("target") if isinstance(p, dict) else p).split(":")[-1].split("/")[0]
                        for p in svc.get("ports", [])]
                 for name, svc in services.items() if svc.get("ports")}
    check(set(published) == {"ekey-issuer", "ekey-gateway"}
          and published["ekey-issuer"] == ["8443"] and published["ekey-gateway"] == ["9443"],
          f"compose: only ekey-issuer:8443 and ekey-gateway:9443 are published ({published})")
    for name, section in (("ekey-jwks", "jwks"), ("ekey-issuer", "issuer"), ("ekey-gateway", "gateway")):
        svc = services.get(name, {})
        admin = stack[section]["admin_listen"]
        port = admin.rsplit(":", 1)[1]
        test = (svc.get("healthcheck") or {}).get("test") or []
        check(admin.startswith("0.0.0.0:") and test[:2] == ["CMD", "ekey-readyz"] and test[2:3] == [port],
              f"compose: {name} health check probes /readyz on admin port {port}")
        check(svc.get("command", [None])[0] == name and "/etc/ekey/stack.yaml" in svc.get("command", []),
              f"compose: {name} runs {name} --config /etc/ekey/stack.yaml")
        deps = svc.get("depends_on") or {}
        check(isinstance(deps, dict) and deps.get("redis", {}).get("condition") == "service_healthy",
              f"compose: {name} waits for a healthy redis")
        check(svc.get("read_only") is True and "ALL" in (svc.get("cap_drop") or []),
              f"compose: {name} has a read-only root and drops all capabilities")
    check(services.get("ekey-jwks", {}).get("depends_on", {}).get("pki", {}).get("condition") == "service_completed_successfully",
          "compose: ekey-jwks waits for the pki job to complete")
    check(services.get("ekey-gateway", {}).get("depends_on", {}).get("ekey-issuer", {}).get("condition") == "service_healthy",
          "compose: ekey-gateway waits for a healthy issuer (non-empty key set)")
    pki = " ".join(services.get("pki", {}).get("command", []))
    check("ekey pki init --dir /pki" in pki and all(f"--host {h}" in pki for h in ("ekey-jwks", "ekey-issuer", "ekey-gateway"))
          and "[ -f /pki/ca.crt ]" in pki, "compose: pki job runs ekey pki init once, with every service host")
    for name, svc in services.items():
        build = svc.get("build") or {}
        check(not build.get("args") and not build.get("secrets"), f"compose: {name} passes no build arguments or secrets")
    with open(stack_path) as f:
        text = f.read()
    check(stack["store"]["url"] == "redis://redis:6379" and "redis" in services, "compose: stack.yaml uses the compose redis")
    check("PRIVATE KEY" not in text, "compose: stack.yaml holds no key material")


def check_compose_monitoring(path, stack_path):
    """The output of `docker-compose -f compose/docker-compose.yml -f
    compose/docker-compose.monitoring.yml config`: prometheus scrapes the three admin ports of
    stack.yaml with the target labels the alert rules select on and loads the rules file;
    grafana gets the datasource, the dashboard provider and the dashboard JSON; every mounted
    file exists; the two UIs are published on the host's loopback only."""
    with open(path) as f:
        services = (yaml.safe_load(f) or {}).get("services", {})
    with open(stack_path) as f:
        stack = yaml.safe_load(f)
    check({"prometheus", "grafana", "ekey-issuer", "ekey-gateway", "ekey-jwks"} <= set(services),
          f"compose monitoring: prometheus and grafana next to the E-Key services ({sorted(services)})")

    def mounts(name):
        found = {}
        for v in services.get(name, {}).get("volumes", []):
            source, target = (v.get("source"), v.get("target")) if isinstance(v, dict) else v.split(":")[:2]
            found[target] = source
        return found

    for name in ("prometheus", "grafana"):
        binds = {t: s for t, s in mounts(name).items() if s and s.startswith("/")}
        missing = sorted(s for s in binds.values() if not os.path.exists(s))
        check(binds and not missing, f"compose monitoring: {name} mounts files that exist (missing: {missing})")
        ports = [str(p.get("host_ip", "") if isinstance(p, dict) else p) for p in services.get(name, {}).get("ports", [])]
        check(ports and all(p.startswith("127.0.0.1") for p in ports), f"compose monitoring: {name} published on 127.0.0.1 only ({ports})")
    prom = mounts("prometheus")
    config_path = prom.get("/etc/prometheus/prometheus.yml")
    rules = [s for t, s in prom.items() if t.startswith("/etc/prometheus/rules/")]
    check(any(r and r.endswith("k8s/base/prometheus-rules.yaml") for r in rules),
          "compose monitoring: prometheus loads k8s/base/prometheus-rules.yaml")
    config = {}
    if config_path and os.path.exists(config_path):
        with open(config_path) as f:
            config = yaml.safe_load(f) or {}
    check(any(r.startswith("/etc/prometheus/rules/") for r in config.get("rule_files", [])),
          "compose monitoring: prometheus.yml reads the mounted rule files")
    jobs = {j["job_name"]: j for j in config.get("scrape_configs", [])}
    for name, section in (("ekey-jwks", "jwks"), ("ekey-issuer", "issuer"), ("ekey-gateway", "gateway")):
        port = stack[section]["admin_listen"].rsplit(":", 1)[1]
        statics = (jobs.get(name) or {}).get("static_configs", [])
        targets = [t for sc in statics for t in sc.get("targets", [])]
        labels = {k: v for sc in statics for k, v in (sc.get("labels") or {}).items()}
        check(targets == [f"{name}:{port}"] and jobs[name].get("metrics_path", "/metrics") == "/metrics",
              f"compose monitoring: job {name} scrapes {name}:{port}/metrics ({targets})")
        check(labels.get("app_kubernetes_io_name") == name and labels.get("app_kubernetes_io_part_of") == "ekey",
              f"compose monitoring: job {name} carries the app_kubernetes_io_* labels the alerts select on")
    graf = mounts("grafana")
    sources, providers = graf.get("/etc/grafana/provisioning/datasources/ekey.yaml"), graf.get("/etc/grafana/provisioning/dashboards/ekey.yaml")
    if sources and os.path.exists(sources) and providers and os.path.exists(providers):
        with open(sources) as f:
            datasources = yaml.safe_load(f).get("datasources", [])
        with open(providers) as f:
            paths = [p.get("options", {}).get("path") for p in yaml.safe_load(f).get("providers", [])]
        check(any(d.get("type") == "prometheus" and d.get("url") == "http://prometheus:9090" and d.get("isDefault")
                  for d in datasources), "compose monitoring: grafana's default datasource is the compose prometheus")
        dashboards = [s for t, s in graf.items() if any(p and t.startswith(p.rstrip("/") + "/") for p in paths)]
        check(any(s.endswith("k8s/grafana/ekey-dashboard.json") for s in dashboards),
              "compose monitoring: grafana's dashboard provider path holds k8s/grafana/ekey-dashboard.json")
    else:
        check(False, "compose monitoring: grafana mounts a datasource and a dashboard provider file")


def check_rules(path):
    with open(path) as f:
        rules = yaml.safe_load(f)
    names = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    check(ALERTS <= names, f"rules: alerts {sorted(ALERTS)} present (missing: {sorted(ALERTS - names)})")
    for g in rules["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                check(bool(r.get("expr")) and r.get("labels", {}).get("severity") and r.get("annotations", {}).get("summary"),
                      f"rules: {r['alert']} has expr, severity and summary")


def main(argv):
    renders, rules, config_out, env_out, compose, stack, schemas = [], None, None, None, None, None, None
    compose_monitoring = None
    args = iter(argv)
    for a in args:
        if a == "--rules":
            rules = next(args)
        elif a == "--config-out":
            config_out = next(args)
        elif a == "--env-out":
            env_out = next(args)
        elif a == "--compose":
            compose = next(args)
        elif a == "--compose-monitoring":
            compose_monitoring = next(args)
        elif a == "--stack":
            stack = next(args)
        elif a == "--crd-schemas":
            with open(next(args)) as f:
                schemas = yaml.safe_load(f)["schemas"]
        else:
            renders.append(a)
    rules_content = None
    if rules:
        with open(rules) as f:
            rules_content = yaml.safe_load(f)
    for r in renders:
        check_render(r, config_out, env_out, rules_content, schemas)
    if rules:
        check_rules(rules)
    if compose:
        check_compose(compose, stack)
    if compose_monitoring:
        check_compose_monitoring(compose_monitoring, stack)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
