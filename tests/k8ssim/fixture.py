"""`with running_k8ssim(tmp_path) as k8s:` starts the stand-in and writes a kubeconfig for it."""

import contextlib
import json
import os
import secrets

from .server import K8sSim


def write_kubeconfig(path, server_url, token=None, ca_path=None, context="k8ssim", namespace="default"):
    """Write a kubeconfig (JSON is valid YAML) pointing at ``server_url``; return ``path``."""
    cluster = {"server": server_url}
    if ca_path:
        cluster["certificate-authority"] = str(ca_path)
    user = {"token": token} if token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
        "current-context": context,
        "preferences": {},
    }
    with open(str(path), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
    os.chmod(str(path), 0o600)
    return str(path)


@contextlib.contextmanager
def running_k8ssim(directory, tls=True, token=True):
    """Start a K8sSim (HTTPS with its certificate in ``directory`` unless ``tls`` is false; a random bearer token
    unless ``token`` is false) and write ``directory/kubeconfig``; yields the K8sSim with ``kubeconfig`` set."""
    os.makedirs(str(directory), exist_ok=True)
    bearer = secrets.token_hex(16) if token else None
    sim = K8sSim(tls=tls, cert_dir=str(directory), token=bearer)
    sim.start()
    try:
        sim.kubeconfig = write_kubeconfig(os.path.join(str(directory), "kubeconfig"), sim.url, token=bearer, ca_path=sim.ca_path)
        yield sim
    finally:
        sim.stop()
