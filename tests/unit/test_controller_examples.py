# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""examples/controller (infra.aap_configuration data) against the collection it configures AWX/AAP for."""

from __future__ import annotations

import glob
import os
import re

import pytest
import yaml
from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve import client as pve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples", "controller")
# Credential types every AWX/AAP has; anything else must be defined in the examples.
BUILTIN_CREDENTIAL_TYPES = {"Machine", "Source Control", "Vault", "Container Registry", "Ansible Galaxy/Automation Hub API Token"}
PLAYBOOKS = ("doctor.yml", "proxmox_gpu_prep.yml", "gpu_vm.yml", "gpu_worker.yml", "site.yml")
TEMPLATE_FIELD = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


class Unsafe(str):
    """A value tagged !unsafe: Ansible hands it on untemplated."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))


def _load_all():
    data = {}
    for path in sorted(glob.glob(os.path.join(EXAMPLES, "*.yml"))):
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.load(handle, Loader=_Loader)
        for key, value in (loaded or {}).items():
            assert key not in data, "%s is defined twice" % key
            data[key] = value
    return data


DATA = _load_all()


def _named(key):
    return {item["name"]: item for item in DATA.get(key, [])}


TEMPLATES = _named("controller_templates")
CREDENTIALS = _named("controller_credentials")
CREDENTIAL_TYPES = _named("controller_credential_types")


def _module_env_names():
    """{option: [environment variables]} the Proxmox modules fall back to."""
    names = {}
    for option, spec in pve.AUTH_ARGUMENT_SPEC.items():
        fallback = spec.get("fallback")
        if fallback:
            names[option] = list(fallback[1])
    return names


def _role_options():
    options = {}
    for path in glob.glob(os.path.join(ROOT, "roles", "*", "meta", "argument_specs.yml")):
        with open(path, encoding="utf-8") as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        for entry in specs.values():
            options.update(entry.get("options") or {})
    return options


def test_the_object_types_are_all_there():
    for key in ("controller_execution_environments", "controller_credential_types", "controller_credentials",
                "controller_projects", "controller_inventories", "controller_inventory_sources", "controller_templates"):
        assert DATA.get(key), "examples/controller defines no %s" % key


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_one_template_per_playbook(playbook):
    assert [t for t in TEMPLATES.values() if t["playbook"] == "playbooks/" + playbook], "no job template runs playbooks/" + playbook


def test_every_playbook_has_a_template():
    on_disk = {"playbooks/" + os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "playbooks", "*.yml"))}
    assert on_disk - {t["playbook"] for t in TEMPLATES.values()} == set()


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_references(name):
    template = TEMPLATES[name]
    assert os.path.isfile(os.path.join(ROOT, template["playbook"])), "%s: %s does not exist" % (name, template["playbook"])
    assert template["project"] in _named("controller_projects")
    assert template["inventory"] in _named("controller_inventories")
    assert template["execution_environment"] in _named("controller_execution_environments")
    for credential in template.get("credentials", []):
        assert credential in CREDENTIALS, "%s: credential %r is not defined" % (name, credential)
    # AWX takes one credential of each type per job template.
    types = [CREDENTIALS[c]["credential_type"] for c in template.get("credentials", [])]
    assert len(types) == len(set(types)), "%s: two credentials of one type" % name
    assert template.get("ask_limit_on_launch") is True, "%s: limit is not prompted on launch" % name


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_surveys_ask_for_role_variables(name):
    template = TEMPLATES[name]
    survey = template.get("survey_spec")
    assert bool(template.get("survey_enabled")) == bool(survey), "%s: survey_enabled and survey_spec disagree" % name
    if not survey:
        return
    options = _role_options()
    assert survey.get("name") and survey.get("spec")
    for question in survey["spec"]:
        variable = question["variable"]
        assert variable in options, "%s: survey variable %s is no role variable" % (name, variable)
        assert question["type"] in {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
        choices = question.get("choices") or []
        if isinstance(choices, str):
            choices = choices.split("\n")
        if question["type"] in ("multiplechoice", "multiselect"):
            assert str(question["default"]) in choices
        if options[variable].get("type") == "bool":
            assert question["type"] == "multiplechoice" and set(choices) == {"true", "false"}, "%s: %s is a bool; offer true and false" % (name, variable)
            assert question["default"] == str(options[variable].get("default", False)).lower(), (
                "%s: the survey's default %r is not the role's" % (name, question["default"]))


def test_the_reboot_switch_is_a_survey_question():
    asking = {n for n, t in TEMPLATES.items() for q in (t.get("survey_spec") or {}).get("spec", []) if q["variable"] == "proxmox_gpu_prep_reboot"}
    running = {n for n, t in TEMPLATES.items() if t["playbook"] in ("playbooks/proxmox_gpu_prep.yml", "playbooks/site.yml")}
    assert running and running <= asking


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
def test_credentials(name):
    credential = CREDENTIALS[name]
    kind = credential["credential_type"]
    assert kind in CREDENTIAL_TYPES or kind in BUILTIN_CREDENTIAL_TYPES, "%s: unknown credential type %r" % (name, kind)
    if kind not in CREDENTIAL_TYPES:
        return
    inputs = CREDENTIAL_TYPES[kind]["inputs"]
    fields = {f["id"]: f for f in inputs["fields"]}
    assert set(credential["inputs"]) <= set(fields), "%s: inputs the type does not have" % name
    assert set(inputs.get("required", [])) <= set(credential["inputs"]), "%s: required inputs missing" % name
    for field, value in credential["inputs"].items():
        if fields[field].get("secret"):
            assert re.fullmatch(r"\{\{ vault_\w+ \}\}", value), "%s: %s must come from a vault variable, not be written here" % (name, field)


@pytest.mark.parametrize("name", sorted(CREDENTIAL_TYPES))
def test_injectors_use_required_fields_only(name):
    # AWX renders every injector; an optional field left empty would export an empty variable.
    credential_type = CREDENTIAL_TYPES[name]
    required = set(credential_type["inputs"].get("required", []))
    ids = {f["id"] for f in credential_type["inputs"]["fields"]}
    assert required <= ids
    injectors = credential_type["injectors"]
    files = {label.split(".", 1)[1] for label in injectors.get("file", {})}
    assert all(label.startswith("template.") for label in injectors.get("file", {})), "use the template.<name> form"
    for section in ("file", "env", "extra_vars"):
        for key, template in injectors.get(section, {}).items():
            assert isinstance(template, Unsafe), "%s: %s %s must be tagged !unsafe" % (name, section, key)
            for field in TEMPLATE_FIELD.findall(template):
                if field.startswith("tower.filename."):
                    assert field.split(".", 2)[2] in files, "%s: %s names a file that is not injected" % (name, field)
                else:
                    assert field in required, "%s: %s uses %s, which is not a required field" % (name, key, field)


def test_injected_variables_are_the_ones_the_modules_read():
    module_env = _module_env_names()
    known = {env for names in module_env.values() for env in names} | {"K8S_AUTH_KUBECONFIG"}
    injected = set()
    for name, credential_type in CREDENTIAL_TYPES.items():
        env = set(credential_type["injectors"].get("env", {}))
        assert env <= known, "%s injects %s, which no module reads" % (name, sorted(env - known))
        injected |= env
        # Options the modules refuse together must not come from one credential.
        for together in pve.AUTH_MUTUALLY_EXCLUSIVE:
            both = [env_name for option in together for env_name in module_env.get(option, []) if env_name in env]
            assert len(both) < len(together), "%s injects %s together" % (name, both)
    for option in ("api_host", "api_user", "api_password", "api_token_id", "api_token_secret"):
        assert set(module_env[option]) & injected, "no credential type injects %s" % module_env[option]
    assert "K8S_AUTH_KUBECONFIG" in injected


def test_kubeconfig_is_a_file():
    for credential_type in CREDENTIAL_TYPES.values():
        template = credential_type["injectors"].get("env", {}).get("K8S_AUTH_KUBECONFIG")
        if template is not None:
            assert TEMPLATE_FIELD.findall(template)[0].startswith("tower.filename.")


def test_project_and_inventory_source():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        repository = yaml.safe_load(handle)["repository"]
    projects = _named("controller_projects")
    for project in projects.values():
        assert project["scm_url"].rstrip("/").removesuffix(".git") == repository.rstrip("/")
        assert project["default_environment"] in _named("controller_execution_environments")
    for source in DATA["controller_inventory_sources"]:
        assert source["inventory"] in _named("controller_inventories")
        assert source["source_project"] in projects
        assert os.path.isfile(os.path.join(ROOT, source["source_path"])), "%s does not exist" % source["source_path"]
