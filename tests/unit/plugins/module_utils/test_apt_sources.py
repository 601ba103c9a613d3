# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apt_sources: components added to the distribution's entries of the running release, in both formats, once."""

import pytest
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.guest import apt_sources

DEBIAN = ["non-free", "non-free-firmware"]

# Debian 12 as the installer writes it (netinst with network mirror), plus a third-party repository of
# another suite and a commented cdrom line.
BOOKWORM_LIST = """#deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_ - Official amd64 NETINST 20240210-11:27]/ bookworm contrib main non-free-firmware

deb http://deb.debian.org/debian/ bookworm main non-free-firmware
deb-src http://deb.debian.org/debian/ bookworm main non-free-firmware

deb http://security.debian.org/debian-security bookworm-security main non-free-firmware
deb-src http://security.debian.org/debian-security bookworm-security main non-free-firmware

# bookworm-updates, to get updates before a point release is made;
deb http://deb.debian.org/debian/ bookworm-updates main non-free-firmware
deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable
deb http://deb.debian.org/debian bullseye main  # old release, left alone
"""

TRIXIE_SOURCES = """Types: deb
URIs: http://deb.debian.org/debian/
Suites: trixie trixie-updates
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.debian.org/debian-security/
Suites: trixie-security
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

NOBLE_SOURCES = """Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://security.ubuntu.com/ubuntu/
Suites: noble-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
"""


def test_debian_12_one_line_entries():
    after = apt_sources.add_components(BOOKWORM_LIST, DEBIAN, codename="bookworm")
    lines = after.splitlines()
    assert lines[2] == "deb http://deb.debian.org/debian/ bookworm main non-free-firmware non-free"
    assert lines[3] == "deb-src http://deb.debian.org/debian/ bookworm main non-free-firmware non-free"
    assert lines[5] == "deb http://security.debian.org/debian-security bookworm-security main non-free-firmware non-free"
    assert lines[9] == "deb http://deb.debian.org/debian/ bookworm-updates main non-free-firmware non-free"
    unchanged = [0, 1, 4, 7, 8, 10, 11]
    before = BOOKWORM_LIST.splitlines()
    assert [lines[i] for i in unchanged] == [before[i] for i in unchanged]
    assert apt_sources.add_components(after, DEBIAN, codename="bookworm") == after


def test_minimal_line_gets_both_and_keeps_options_and_comments():
    text = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror/debian bookworm main contrib # mirror\r\n"
    after = apt_sources.add_components(text, DEBIAN, codename="bookworm")
    assert after == ("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror/debian bookworm main contrib "
                     "non-free non-free-firmware # mirror\r\n")


def test_entries_without_main_are_left_alone():
    text = "deb http://deb.debian.org/debian bookworm contrib\n"
    assert apt_sources.add_components(text, DEBIAN, codename="bookworm") == text


def test_debian_13_deb822():
    after = apt_sources.add_components(TRIXIE_SOURCES, DEBIAN, codename="trixie", deb822=True)
    assert after.count("Components: main non-free-firmware non-free\n") == 2
    assert after.replace(" non-free\n", "\n") == TRIXIE_SOURCES
    assert apt_sources.add_components(after, DEBIAN, codename="trixie", deb822=True) == after


def test_ubuntu_deb822_multiverse():
    after = apt_sources.add_components(NOBLE_SOURCES, ["universe", "multiverse"], codename="noble", deb822=True)
    assert "Components: main restricted universe multiverse\nSigned-By" in after
    assert after.count("Components: main restricted universe multiverse") == 2
    assert apt_sources.add_components(after, ["universe", "multiverse"], codename="noble", deb822=True) == after


def test_disabled_or_other_release_stanzas_are_left_alone():
    text = "Types: deb\nURIs: http://x/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\nTypes: deb\nSuites: bullseye\nComponents: main\n"
    assert apt_sources.add_components(text, DEBIAN, codename="bookworm", deb822=True) == text


def test_ubuntu_one_line():
    text = "deb http://archive.ubuntu.com/ubuntu jammy main restricted\ndeb http://archive.ubuntu.com/ubuntu jammy-updates universe\n"
    after = apt_sources.add_components(text, ["universe", "multiverse"], codename="jammy")
    assert after == ("deb http://archive.ubuntu.com/ubuntu jammy main restricted universe multiverse\n"
                     "deb http://archive.ubuntu.com/ubuntu jammy-updates universe\n")


@pytest.mark.parametrize("distribution, version, expected", [
    ("debian", "12", DEBIAN), ("debian", "13", DEBIAN), ("debian", "11", ["non-free"]), ("debian", None, DEBIAN),
    ("ubuntu", "24.04", ["universe", "multiverse"]), ("fedora", "40", []),
])
def test_default_components(distribution, version, expected):
    assert apt_sources.default_components(distribution, version) == expected


def test_parse_os_release():
    text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n# c\n'
    assert apt_sources.parse_os_release(text) == {
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian", "VERSION_ID": "12", "VERSION_CODENAME": "bookworm"}


@pytest.mark.parametrize("components", [[], ["non free"], [""], ["a\tb"], ["main;x"], [None]])
def test_components_must_be_plain_words(components):
    with pytest.raises(PassthroughError):
        apt_sources.validate_components(components)


def test_plain_components_pass():
    apt_sources.validate_components(["non-free", "non-free-firmware", "contrib", "universe"])
    apt_sources.validate_components(None)


def test_release_facts_refuse_unknown_or_missing():
    with pytest.raises(PassthroughError) as caught:
        apt_sources.release_facts(None, "/etc/os-release")
    assert "/etc/os-release" in str(caught.value)
    with pytest.raises(PassthroughError) as caught:
        apt_sources.release_facts("ID=arch\n", "/etc/os-release")
    assert "'arch'" in str(caught.value)
    assert apt_sources.release_facts("ID=arch\n", "/etc/os-release", ["extra"], "rolling") == ("arch", None, "rolling")
    assert apt_sources.release_facts('ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n', "x") == ("debian", "13", "trixie")
