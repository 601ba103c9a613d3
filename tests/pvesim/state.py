"""Simulator state: one JSON document, loaded at start, written back after every change."""

import copy
import json
import os
import secrets
import tempfile
import threading
import time

from .schema import DEFAULT_PVE_VERSION, RELEASES

STATE_VERSION = 1

M920Q_PCI = [
    {"id": "0000:00:00.0", "class": "0x060000", "vendor": "0x8086", "device": "0x3ec2", "subsystem_vendor": "0x17aa",
     "subsystem_device": "0x3136", "iommugroup": 0, "vendor_name": "Intel Corporation", "device_name": "8th Gen Core Processor Host Bridge/DRAM Registers"},
    {"id": "0000:00:02.0", "class": "0x030000", "vendor": "0x8086", "device": "0x3e92", "subsystem_vendor": "0x17aa",
     "subsystem_device": "0x3136", "iommugroup": 1, "vendor_name": "Intel Corporation", "device_name": "CoffeeLake-S GT2 [UHD Graphics 630]"},
    {"id": "0000:00:14.0", "class": "0x0c0330", "vendor": "0x8086", "device": "0xa36d", "subsystem_vendor": "0x17aa",
     "subsystem_device": "0x3136", "iommugroup": 3, "vendor_name": "Intel Corporation", "device_name": "Cannon Lake PCH USB 3.1 xHCI Host Controller"},
    {"id": "0000:00:14.2", "class": "0x050000", "vendor": "0x8086", "device": "0xa36f", "subsystem_vendor": "0x17aa",
     "subsystem_device": "0x3136", "iommugroup": 3, "vendor_name": "Intel Corporation", "device_name": "Cannon Lake PCH Shared SRAM"},
    {"id": "0000:00:1f.0", "class": "0x060100", "vendor": "0x8086", "device": "0xa306", "subsystem_vendor": "0x17aa",
     "subsystem_device": "0x3136", "iommugroup": 7, "vendor_name": "Intel Corporation", "device_name": "Q370 Chipset LPC/eSPI Controller"},
    {"id": "0000:00:1f.3", "class": "0x040300", "vendor": "0x8086", "device": "0xa348", "subsystem_vendor": "0x17aa",
     "subsystem_device": "0x3136", "iommugroup": 7, "vendor_name": "Intel Corporation", "device_name": "Cannon Lake PCH cAVS"},
    {"id": "0000:00:1f.6", "class": "0x020000", "vendor": "0x8086", "device": "0x15bb", "subsystem_vendor": "0x17aa",
     "subsystem_device": "0x3136", "iommugroup": 8, "vendor_name": "Intel Corporation", "device_name": "Ethernet Connection (7) I219-LM"},
    {"id": "0000:01:00.0", "class": "0x010802", "vendor": "0x144d", "device": "0xa808", "subsystem_vendor": "0x144d",
     "subsystem_device": "0xa801", "iommugroup": 9, "vendor_name": "Samsung Electronics Co Ltd", "device_name": "NVMe SSD Controller SM981/PM981/PM983"},
]


def default_state(nodes=("pve1", "pve2", "pve3")):
    """A small homelab: M920q-like nodes with an Intel UHD 630, `local` (dir) and `local-lvm` (lvmthin), root@pam and
    an `automation@pve` user with an API token, no VMs."""
    node_map = {}
    for name in nodes:
        node_map[name] = {"status": "online", "iommu_present": True, "maxcpu": 6, "maxmem": 34359738368,
                          "pci": copy.deepcopy(M920Q_PCI)}
    return {
        "state_version": STATE_VERSION,
        "version": dict(RELEASES[DEFAULT_PVE_VERSION]),
        "cluster_name": "homelab",
        "nodes": node_map,
        "storages": {
            "local": {"type": "dir", "content": ["backup", "iso", "vztmpl", "snippets"], "shared": 0},
            "local-lvm": {"type": "lvmthin", "content": ["images", "rootdir"], "shared": 0},
        },
        "volumes": [],
        "vms": {},
        "tasks": {},
        "mappings": {"pci": {}},
        "access": {
            "users": {
                "root@pam": {"password": "rootpass", "enable": 1, "tokens": {}},
                "automation@pve": {"password": "automationpass", "enable": 1, "groups": [],
                                   "tokens": {"ansible": {"secret": "0b2f8f4e-5d1c-4c53-9d0f-6f1b1c2a3e4d", "privsep": 0}}},
            },
            "acl": [
                {"path": "/", "ugid": "automation@pve", "roleid": "PVEAuditor", "propagate": 1},
                {"path": "/vms", "ugid": "automation@pve", "roleid": "PVEVMAdmin", "propagate": 1},
                {"path": "/storage", "ugid": "automation@pve", "roleid": "PVEDatastoreUser", "propagate": 1},
                {"path": "/mapping/pci", "ugid": "automation@pve", "roleid": "PVEMappingAdmin", "propagate": 1},
            ],
            "roles": {},
        },
        "settings": {
            "task_duration": 0.05,
            "task_durations": {},
            "mac_prefix": "BC:24:11",
            "lock_timeout": 10.0,
            "auth_failure_delay": 0.0,
            "pve_version": DEFAULT_PVE_VERSION,
        },
    }


class State:
    """The simulator's state document with a re-entrant lock; `save()` writes it atomically."""

    def __init__(self, path, initial=None):
        self.path = path
        self.lock = threading.RLock()
        if path and os.path.exists(path) and initial is None:
            with open(path, encoding="utf-8") as handle:
                self.data = json.load(handle)
        else:
            self.data = copy.deepcopy(initial) if initial is not None else default_state()
        self._fill_defaults()
        self.save()

    def _fill_defaults(self):
        base = default_state(nodes=())
        for key, value in base.items():
            self.data.setdefault(key, copy.deepcopy(value))
        if "pve_version" not in self.data["settings"]:  # a state from before version selection: its major release
            major = str(self.data["version"].get("version", "")).split(".", maxsplit=1)[0]
            self.data["settings"]["pve_version"] = "8.2" if major == "8" else DEFAULT_PVE_VERSION
        for key, value in base["settings"].items():
            self.data["settings"].setdefault(key, value)
        self.data["mappings"].setdefault("pci", {})
        self.data.setdefault("secret", secrets.token_hex(16))
        self.data.setdefault("next_pid", 20000 + secrets.randbelow(10000))
        self.data.setdefault("boot_time", int(time.time()) - 3600)
        for node in self.data["nodes"].values():
            node.setdefault("status", "online")
            node.setdefault("iommu_present", True)
            node.setdefault("pci", [])
        for vm in self.data["vms"].values():
            vm.setdefault("pending", {})
            vm.setdefault("status", "stopped")
            vm.setdefault("config", {})
        # a task that was running when the process stopped cannot finish any more
        for task in self.data["tasks"].values():
            if task.get("status") == "running":
                task["status"] = "stopped"
                task["log"].append("unexpected status")

    def save(self):
        """Write the state atomically next to its final place."""
        if not self.path:
            return
        with self.lock:
            directory = os.path.dirname(os.path.abspath(self.path))
            fd, tmp = tempfile.mkstemp(prefix=".pvesim-", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.data, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.path)

    def snapshot(self):
        """A deep copy of the whole state."""
        with self.lock:
            return copy.deepcopy(self.data)

    def replace(self, data):
        """Replace the state (e.g. a test loading a prepared document)."""
        with self.lock:
            self.data = copy.deepcopy(data)
            self._fill_defaults()
            self.save()
