"""Boot a fake host of the fleet test: bind the device to vfio-pci in its sysfs tree, give it a new boot id."""

import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "unit"))
from sysfs_builder import set_driver  # noqa: E402  pylint: disable=wrong-import-position

root, address = sys.argv[1], sys.argv[2]
set_driver(root, address, "vfio-pci")
boot_id = os.path.join(root, "proc", "sys", "kernel", "random", "boot_id")
os.makedirs(os.path.dirname(boot_id), exist_ok=True)
with open(boot_id, "w", encoding="utf-8") as handle:
    handle.write(str(uuid.uuid4()) + "\n")
