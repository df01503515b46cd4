"""Properties of the rendered Kubernetes manifests (every overlay), so no change drops them silently."""

from __future__ import annotations

import math
import re
from dataclasses import fields

import pytest
from kubernetes_validate import utils as kubernetes_schemas

from fusion_service.config import Settings, env_name
from tests.deploy.rendering import (
    DEPLOY,
    OVERLAYS,
    Obj,
    config_map_file,
    container,
    env,
    flag,
    model_servers,
    mounted_file,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    selects,
)

OLDEST_KUBERNETES = "1.27.0"  # native gRPC probes are GA from 1.27 (deploy/README.md says so too)
MODALITIES = ("audio", "video")
TARGET = re.compile(r"^dns:///(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc\.cluster\.local:(?P<port>\d+)$")

overlays = pytest.mark.parametrize("overlay", OVERLAYS)


def deployments(overlay: str) -> list[Obj]:
    return of_kind(render(overlay), "Deployment")


def cpu_limit(container_: Obj) -> int:
    """Whole CPUs of the limit, rounded up as the downward API does with divisor 1."""
    cpu = str(container_["resources"]["limits"]["cpu"])
    return math.ceil(int(cpu[:-1]) / 1000) if cpu.endswith("m") else math.ceil(float(cpu))


def thread_count(container_: Obj, value: str) -> int:
    """A thread setting: a number, or $(VAR) where VAR is the container's CPU limit from the downward API."""
    reference = re.fullmatch(r"\$\((\w+)\)", value)
    if not reference:
        return int(value)
    source = env(container_)[reference[1]]["valueFrom"]["resourceFieldRef"]
    assert source["resource"] == "limits.cpu" and source["containerName"] == container_["name"], source
    assert str(source.get("divisor", "1")) == "1", source
    return cpu_limit(container_)


def pre_stop_sleep_s(container_: Obj) -> int:
    command = container_["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_schemas.latest_version()])
@overlays
def test_every_overlay_renders_to_objects_valid_against_the_kubernetes_schemas(overlay, version):
    objects = render(overlay)
    assert objects, f"overlay {overlay} renders nothing"
    for obj in objects:
        kubernetes_schemas.validate(obj, version, strict=True)


@overlays
def test_everything_lives_in_the_overlays_namespace_with_restricted_pod_security(overlay):
    objects = render(overlay)
    (namespace,) = of_kind(objects, "Namespace")
    name = namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {name}


@overlays
def test_every_container_has_cpu_and_memory_requests_and_limits(overlay):
    for deployment in deployments(overlay):
        spec = pod_spec(deployment)
        for c in spec["containers"] + spec.get("initContainers", []):
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"].get(kind, {})), f"{c['name']}: {kind}"


@overlays
def test_pods_run_as_non_root_read_only_unprivileged_with_runtime_default_seccomp(overlay):
    for deployment in deployments(overlay):
        spec = pod_spec(deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"] + spec.get("initContainers", []):
            security = c["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, c["name"]
            assert security["readOnlyRootFilesystem"] is True, c["name"]
            assert security.get("privileged", False) is False, c["name"]
            assert security["capabilities"]["drop"] == ["ALL"], c["name"]
            assert not security["capabilities"].get("add"), c["name"]


@overlays
def test_fusion_sets_only_options_the_service_knows(overlay):
    known = {env_name(f.name) for f in fields(Settings)}
    fusion = container(named(render(overlay), "Deployment", "fusion"), "fusion")
    unknown = sorted(name for name in env(fusion) if name.startswith("FUSION_") and name not in known)
    assert not unknown, f"the fusion service has no option for {unknown} (fusion_service/config.py)"


@overlays
def test_fusion_readiness_is_its_grpc_health_check_and_liveness_does_not_follow_the_model_servers(overlay):
    fusion = container(named(render(overlay), "Deployment", "fusion"), "fusion")
    port = int(env(fusion)["FUSION_PORT"]["value"])
    assert {"name": "grpc", "containerPort": port} in fusion["ports"]
    readiness = fusion["readinessProbe"]
    if "FUSION_TLS_CERT_FILE" in env(fusion):
        # The kubelet's gRPC probe cannot speak TLS: the image's health check client does, over TLS.
        command = readiness["exec"]["command"]
        assert command[:2] == ["python", "/opt/fusion/healthcheck.py"]
        assert any(arg.startswith("--tls-ca-file=") for arg in command)
    else:
        assert readiness["grpc"]["port"] == port
    # grpc.health.v1 turns NOT_SERVING when a model server is away: as liveness it would restart
    # every fusion pod during a model-server outage.
    liveness = fusion["livenessProbe"]
    assert "grpc" not in liveness and "exec" not in liveness
    assert liveness["tcpSocket"]["port"] in ("grpc", port)


@overlays
def test_model_servers_are_ready_only_once_their_model_is_loaded(overlay):
    for server in model_servers(render(overlay)):
        tfs = container(server, "tfserving")
        rest_port = int(flag(tfs, "rest_api_port"))
        assert {"name": "rest", "containerPort": rest_port} in tfs["ports"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert tfs[probe]["httpGet"]["port"] in ("rest", rest_port), probe
        assert re.fullmatch(r"/v1/models/[a-z0-9_-]+/metadata", tfs["readinessProbe"]["httpGet"]["path"])


@overlays
@pytest.mark.parametrize("modality", MODALITIES)
def test_fusion_model_target_is_a_headless_service_of_tf_serving_with_the_configured_model(overlay, modality):
    objects = render(overlay)
    fusion = env(container(named(objects, "Deployment", "fusion"), "fusion"))
    target = fusion[f"FUSION_{modality.upper()}_MODEL_TARGET"]["value"]
    model_name = fusion[f"FUSION_{modality.upper()}_MODEL_NAME"]["value"]
    parts = TARGET.match(target)
    assert parts, f"{target!r} is not dns:///<service>.<namespace>.svc.cluster.local:<port>"

    service = named(objects, "Service", parts["service"])
    assert service["metadata"]["namespace"] == parts["namespace"]
    assert service["spec"]["clusterIP"] == "None", "round-robin over pods needs a headless Service"
    (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == int(parts["port"])]
    (server,) = [d for d in of_kind(objects, "Deployment") if selects(service["spec"]["selector"], pod_labels(d))]

    tfs = container(server, "tfserving")
    (container_port,) = [p for p in tfs["ports"] if service_port["targetPort"] in (p["name"], p["containerPort"])]
    assert int(flag(tfs, "port")) == container_port["containerPort"]
    models_config = config_map_file(objects, server, tfs, flag(tfs, "model_config_file"))
    assert re.findall(r'\bname:\s*"([^"]+)"', models_config) == [model_name]
    assert f'base_path: "/models/{model_name}"' in models_config
    assert tfs["image"].split(":")[0].endswith(f"model-{model_name}"), tfs["image"]
    for probe in ("startupProbe", "readinessProbe"):
        assert tfs[probe]["httpGet"]["path"] == f"/v1/models/{model_name}/metadata"
    assert tfs["livenessProbe"]["httpGet"]["path"] == f"/v1/models/{model_name}"


@overlays
def test_thread_settings_match_cpu_limits(overlay):
    objects = render(overlay)
    for server in model_servers(objects):
        tfs = container(server, "tfserving")
        cpus = cpu_limit(tfs)
        assert tfs["resources"]["requests"]["cpu"] == tfs["resources"]["limits"]["cpu"], "whole, guaranteed CPUs"
        for pool in ("tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism"):
            assert thread_count(tfs, flag(tfs, pool)) == cpus, pool
        assert flag(tfs, "enable_batching") == "true"
        batching = config_map_file(objects, server, tfs, flag(tfs, "batching_parameters_file"))
        assert int(re.search(r"num_batch_threads\s*\{\s*value:\s*(\d+)", batching)[1]) == cpus
    fusion = container(named(objects, "Deployment", "fusion"), "fusion")
    assert thread_count(fusion, "$(FUSION_WORKER_THREADS)") == cpu_limit(fusion)


@overlays
def test_every_deployment_has_an_hpa_and_a_pdb_of_its_own(overlay):
    objects = render(overlay)
    for deployment in of_kind(objects, "Deployment"):
        name, labels = deployment["metadata"]["name"], pod_labels(deployment)
        assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
        others = [pod_labels(d) for d in of_kind(objects, "Deployment") if d is not deployment]

        (hpa,) = [h for h in of_kind(objects, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == name]
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert "replicas" not in deployment["spec"], f"{name}: the HPA owns the replica count"
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        if overlay.startswith("prod"):
            assert hpa["spec"]["minReplicas"] >= 2, f"{name}: one pod is no redundancy"

        (pdb,) = [p for p in of_kind(objects, "PodDisruptionBudget") if selects(p["spec"]["selector"]["matchLabels"], labels)]
        assert not any(selects(pdb["spec"]["selector"]["matchLabels"], other) for other in others)
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") is not None


def ingress_allowed(objects, source_namespace: str, source_labels: dict, target: Obj, port_name: str,
                    namespace_labels: dict | None = None) -> bool:
    """Kubernetes NetworkPolicy semantics, for the selectors these manifests use (matchLabels only).
    `namespace_labels`: labels of the source namespace besides the name label every namespace has."""
    target_namespace = target["metadata"]["namespace"]
    port_number = next(
        p["containerPort"] for c in pod_spec(target)["containers"] for p in c["ports"] if p["name"] == port_name
    )
    policies = [
        p for p in of_kind(objects, "NetworkPolicy")
        if p["metadata"]["namespace"] == target_namespace
        and "Ingress" in p["spec"]["policyTypes"]
        and selects(p["spec"]["podSelector"]["matchLabels"], pod_labels(target))
    ]
    if not policies:
        return True

    def peer_matches(peer: Obj) -> bool:
        assert set(peer) <= {"podSelector", "namespaceSelector"}, f"unexpected peer {peer}"
        for selector in peer.values():
            assert set(selector) == {"matchLabels"}, f"unexpected selector {selector}"
        if "namespaceSelector" in peer:
            labels = {"kubernetes.io/metadata.name": source_namespace, **(namespace_labels or {})}
            namespace_ok = selects(peer["namespaceSelector"]["matchLabels"], labels)
        else:
            namespace_ok = source_namespace == target_namespace
        pod_ok = selects(peer["podSelector"]["matchLabels"], source_labels) if "podSelector" in peer else True
        return namespace_ok and pod_ok

    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p["port"] in (port_name, port_number) for p in ports):
                continue
            if not rule.get("from") or any(peer_matches(peer) for peer in rule["from"]):
                return True
    return False


@overlays
def test_only_fusion_pods_reach_the_model_servers_and_only_prometheus_scrapes_metrics(overlay):
    objects = render(overlay)
    fusion = named(objects, "Deployment", "fusion")
    namespace = fusion["metadata"]["namespace"]
    intruder = {"app.kubernetes.io/name": "intruder"}
    servers = model_servers(objects)
    assert {s["metadata"]["name"] for s in servers} == {f"tfserving-{m}" for m in MODALITIES}
    others = [pod_labels(d) for d in of_kind(objects, "Deployment") if d is not fusion] + [intruder]
    for server in servers:
        assert ingress_allowed(objects, namespace, pod_labels(fusion), server, "grpc")
        assert not any(ingress_allowed(objects, namespace, other, server, "grpc") for other in others)
        assert not ingress_allowed(objects, "elsewhere", pod_labels(fusion), server, "grpc")
        assert not ingress_allowed(objects, "monitoring", {}, server, "grpc")
        assert ingress_allowed(objects, "monitoring", {}, server, "rest")
        assert not ingress_allowed(objects, namespace, intruder, server, "rest")
    assert ingress_allowed(objects, "monitoring", {}, fusion, "metrics")
    assert not ingress_allowed(objects, namespace, intruder, fusion, "metrics")


@overlays
def test_only_the_web_gateway_and_labelled_clients_reach_the_fusion_service(overlay):
    objects = render(overlay)
    fusion, web = named(objects, "Deployment", "fusion"), named(objects, "Deployment", "web")
    namespace = fusion["metadata"]["namespace"]
    intruder = {"app.kubernetes.io/name": "intruder"}
    assert ingress_allowed(objects, namespace, pod_labels(web), fusion, "grpc")
    assert ingress_allowed(objects, namespace, {**intruder, "emotion.io/fusion-client": "true"}, fusion, "grpc")
    assert ingress_allowed(objects, "our-services", intruder, fusion, "grpc", {"emotion.io/fusion-clients": "true"})
    assert not ingress_allowed(objects, namespace, intruder, fusion, "grpc")
    assert not ingress_allowed(objects, "elsewhere", intruder, fusion, "grpc")
    assert not ingress_allowed(objects, "elsewhere", pod_labels(web), fusion, "grpc")  # a look-alike elsewhere
    assert not ingress_allowed(objects, "monitoring", {}, fusion, "grpc")
    # Browsers come through the ingress controller, and only through it.
    assert ingress_allowed(objects, "ingress-nginx", {}, web, "http")
    assert not ingress_allowed(objects, namespace, intruder, web, "http")


@overlays
def test_the_page_is_published_over_https_with_websockets_allowed_to_stay_open(overlay):
    objects = render(overlay)
    (ingress,) = of_kind(objects, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    (tls,) = ingress["spec"]["tls"]
    assert rule["host"] in tls["hosts"] and tls["secretName"]
    (path,) = rule["http"]["paths"]
    web_service = named(objects, "Service", "web")
    assert path["backend"]["service"]["name"] == "web"
    assert path["backend"]["service"]["port"]["name"] in {p["name"] for p in web_service["spec"]["ports"]}
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600  # a stream's idle gaps
    web = container(named(objects, "Deployment", "web"), "web")
    target = env(web)["EMOTION_TARGET"]["value"]
    assert target == f"fusion.{ingress['metadata']['namespace']}.svc.cluster.local:50051"
    for probe in ("readinessProbe", "livenessProbe"):
        assert web[probe]["httpGet"]["path"] == "/healthz"


@overlays
def test_termination_lets_calls_drain_before_the_pod_is_killed(overlay):
    objects = render(overlay)
    fusion_deployment = named(objects, "Deployment", "fusion")
    fusion = container(fusion_deployment, "fusion")
    shutdown_grace_s = float(env(fusion)["FUSION_SHUTDOWN_GRACE_S"]["value"])
    assert pod_spec(fusion_deployment)["terminationGracePeriodSeconds"] > pre_stop_sleep_s(fusion) + shutdown_grace_s

    for server in model_servers(objects):
        tfs = container(server, "tfserving")
        arguments = dict(a.split("=") for a in flag(tfs, "grpc_channel_arguments").split(","))
        # During preStop the pod still serves while max_connection_age sends its clients GOAWAY;
        # they re-resolve the headless Service (at most every 30 s in gRPC) and leave the pod.
        max_age_s = int(arguments["grpc.max_connection_age_ms"]) * 1.1 / 1000  # gRPC adds up to 10% jitter
        assert pre_stop_sleep_s(tfs) >= max_age_s + 30
        assert pod_spec(server)["terminationGracePeriodSeconds"] > pre_stop_sleep_s(tfs)


@overlays
def test_no_overlay_carries_secrets_or_key_material(overlay):
    objects = render(overlay)
    assert not of_kind(objects, "Secret"), "Secrets are created in the cluster, never rendered from the repository"
    for deployment in of_kind(objects, "Deployment"):
        for c in pod_spec(deployment)["containers"]:
            for entry in c.get("env", []):
                assert "-----BEGIN" not in str(entry.get("value", "")), f"{c['name']}: {entry['name']}"


def test_no_key_or_certificate_is_committed_under_deploy():
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "PRIVATE KEY-----" not in text and "BEGIN CERTIFICATE-----" not in text, path


def test_tls_overlay_encrypts_every_grpc_hop_with_certificates_mounted_from_secrets():
    objects = render("prod-tls")
    fusion_deployment = named(objects, "Deployment", "fusion")
    fusion = container(fusion_deployment, "fusion")
    variables = env(fusion)
    for name in ("FUSION_TLS_CERT_FILE", "FUSION_TLS_KEY_FILE", "FUSION_MODEL_TLS_CA_FILE",
                 "FUSION_MODEL_TLS_CERT_FILE", "FUSION_MODEL_TLS_KEY_FILE"):
        volume, _ = mounted_file(fusion_deployment, fusion, variables[name]["value"])
        assert set(volume["secret"]) <= {"secretName", "defaultMode", "optional"}, name
    ca_file = next(a.split("=", 1)[1] for a in fusion["readinessProbe"]["exec"]["command"] if a.startswith("--tls-ca-file="))
    assert "secret" in mounted_file(fusion_deployment, fusion, ca_file)[0]
    for server in model_servers(objects):
        tfs = container(server, "tfserving")
        volume, _ = mounted_file(server, tfs, flag(tfs, "ssl_config_file"))
        assert set(volume["secret"]) <= {"secretName", "defaultMode", "optional"}
    web_deployment = named(objects, "Deployment", "web")
    web = container(web_deployment, "web")
    (ca_flag,) = [a for a in web["args"] if a.startswith("--ca-cert=")]
    volume, _ = mounted_file(web_deployment, web, ca_flag.split("=", 1)[1])
    assert set(volume["secret"]) <= {"secretName", "defaultMode", "optional"}
