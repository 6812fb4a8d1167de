"""Drives a running k3rs with the official Python `kubernetes` client.

Usage: python client_roundtrip.py KUBECONFIG
Exits non-zero (with a traceback) on the first expectation that fails.
"""
import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
ns = "pyclient"


def expect_status(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        assert e.status == code, f"expected {code}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected HTTP {code}, call succeeded")


core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

# CRUD with typed models.
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one", labels={"app": "py"}), data={"k": "v"})
created = core.create_namespaced_config_map(ns, cm)
assert created.metadata.uid and created.metadata.resource_version
got = core.read_namespaced_config_map("one", ns)
assert got.data == {"k": "v"}
patched = core.patch_namespaced_config_map("one", ns, {"data": {"k2": "v2"}})
assert patched.data == {"k": "v", "k2": "v2"}, patched.data

# Optimistic concurrency: a stale resourceVersion is a 409 Conflict with upstream's message.
stale = got
stale.data = {"lost": "update"}
e = expect_status(409, core.replace_namespaced_config_map, "one", ns, stale)
assert "the object has been modified; please apply your changes to the latest version" in e.body, e.body
fresh = core.read_namespaced_config_map("one", ns)
fresh.data = {"k": "replaced"}
assert core.replace_namespaced_config_map("one", ns, fresh).data == {"k": "replaced"}
expect_status(409, core.create_namespaced_config_map, ns, cm)  # AlreadyExists

# Pagination: 25 objects in pages of 10.
for i in range(25):
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"page-{i:02d}", labels={"set": "pages"})))
names, token, pages = [], None, 0
while True:
    page = core.list_namespaced_config_map(ns, label_selector="set=pages", limit=10, _continue=token)
    pages += 1
    names += [i.metadata.name for i in page.items]
    token = page.metadata._continue
    if not token:
        break
    # Like upstream, no remaining count is estimated when a selector filters the list.
    assert page.metadata.remaining_item_count is None, page.metadata
assert pages == 3 and names == sorted(names) and len(set(names)) == 25, (pages, names)
total = len(core.list_namespaced_config_map(ns).items)
first = core.list_namespaced_config_map(ns, limit=5)
assert first.metadata.remaining_item_count == total - 5, (total, first.metadata)

# Watch resumed from a list's resourceVersion sees exactly what happened after it.
rv = core.list_namespaced_config_map(ns, label_selector="set=later").metadata.resource_version
for i in range(3):
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"later-{i}", labels={"set": "later"})))
seen = []
w = watch.Watch()
for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="set=later",
                   resource_version=rv, timeout_seconds=5):
    seen.append((ev["type"], ev["object"].metadata.name))
    if len(seen) == 3:
        w.stop()
assert seen == [("ADDED", "later-0"), ("ADDED", "later-1"), ("ADDED", "later-2")], seen

# CRD round trip through the dynamic CustomObjectsApi, including the status subresource.
ext = client.ApiextensionsV1Api()
crd = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.py.example.com"},
    "spec": {
        "group": "py.example.com", "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}},
        }],
    },
}
ext.create_custom_resource_definition(crd)
for _ in range(50):
    conds = ext.read_custom_resource_definition("gadgets.py.example.com").status.conditions or []
    if any(c.type == "Established" and c.status == "True" for c in conds):
        break
    time.sleep(0.1)
else:
    raise AssertionError("CRD never became Established")
co = client.CustomObjectsApi()
g = co.create_namespaced_custom_object("py.example.com", "v1", ns, "gadgets", {
    "apiVersion": "py.example.com/v1", "kind": "Gadget",
    "metadata": {"name": "g1"}, "spec": {"size": 2}, "status": {"ready": True}})
assert g["spec"]["size"] == 2 and "status" not in g, g  # status is reset on create
co.patch_namespaced_custom_object_status("py.example.com", "v1", ns, "gadgets", "g1", {"status": {"ready": True}})
g = co.get_namespaced_custom_object("py.example.com", "v1", ns, "gadgets", "g1")
assert g["status"] == {"ready": True} and g["spec"]["size"] == 2, g
e = expect_status(422, co.create_namespaced_custom_object, "py.example.com", "v1", ns, "gadgets", {
    "apiVersion": "py.example.com/v1", "kind": "Gadget", "metadata": {"name": "bad"}, "spec": {"size": "big"}})
assert "spec.size" in e.body, e.body
items = co.list_namespaced_custom_object("py.example.com", "v1", ns, "gadgets")["items"]
assert [i["metadata"]["name"] for i in items] == ["g1"], items
co.delete_namespaced_custom_object("py.example.com", "v1", ns, "gadgets", "g1")
expect_status(404, co.get_namespaced_custom_object, "py.example.com", "v1", ns, "gadgets", "g1")

core.delete_namespaced_config_map("one", ns)
expect_status(404, core.read_namespaced_config_map, "one", ns)
print("python client round trip: ok")
