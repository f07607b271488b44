"""AuthorizationPolicy -> Envoy RBAC filters, with Istio's selection and semantics.

Public surface: `selection.policies_for_workload` (which policies apply to a workload),
`rbac.http_rbac_filters` and `rbac.network_rbac_filters` (translation), and
`evaluate.evaluate` (Envoy's decision for a request, to explain and test policies
without running Envoy). The rest follows Istio's layout: `rule_model` (a rule as
terms), `policy` (terms -> Envoy Policy), `attributes` and `matchers` (one attribute
value -> Envoy matcher), `jwt_attributes` (request.auth.* -> matchers on the verified
JWT's payload), `trust_domain` (principals relative to the mesh); `envoy_match` and
`metadata_match` evaluate Envoy's matchers.
"""
