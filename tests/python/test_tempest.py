"""OpenStack Tempest's volume snapshot API tests against disksnap (dialect-openstack.md §8):
pre-provisioned credentials, Keystone + Block Storage only. Every test that needs only those
must pass; skips are printed with their reasons."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ACCOUNTS, Server

# The snapshot modules the issue names, plus the volume list module and the volume summary
# class (the rest of test_volumes_get, the volume metadata and extend modules need Glance or
# volume metadata, which disksnap does not offer).
MODULES = ("test_volumes_snapshots", "test_volumes_snapshots_list", "test_volumes_snapshots_negative",
           "test_snapshot_metadata", "test_versions", r"admin\.test_snapshots_actions", "test_volumes_list",
           r"test_volumes_get\.VolumesSummaryTest")
REGEX = r"tempest\.api\.volume\.(" + "|".join(MODULES) + r")\b"
BIN_DIR = os.path.dirname(sys.executable)

# Tests that cannot run without services disksnap does not offer, and why.
EXPECTED_SKIPS = {
    "test_snapshot_create_delete_with_volume_in_use": "needs Nova (compute) to attach a volume",
    "test_snapshot_create_offline_delete_online": "needs Nova (compute) to attach a volume",
    "test_snapshot_backup": "needs the Cinder backup service ([volume-feature-enabled] backup = false)",
}


def tempest_conf(url, workdir):
    return f"""[DEFAULT]
log_dir = {workdir}/logs
[oslo_concurrency]
lock_path = {workdir}/locks
[auth]
use_dynamic_credentials = false
test_accounts_file = {workdir}/etc/accounts.yaml
default_credentials_domain_name = Default
create_isolated_networks = false
[identity]
uri_v3 = {url}/identity/v3
auth_version = v3
region = RegionOne
v3_endpoint_type = public
[identity-feature-enabled]
api_v2 = false
[service_available]
cinder = true
neutron = true
nova = false
glance = false
swift = false
horizon = false
[volume]
catalog_type = block-storage
endpoint_type = publicURL
region = RegionOne
volume_size = 1
build_interval = 1
build_timeout = 60
min_microversion = 3.0
max_microversion = 3.71
[volume-feature-enabled]
snapshot = true
backup = false
clone = false
manage_snapshot = false
manage_volume = false
api_extensions = all
[enforce_scope]
cinder = false
[validation]
run_validation = false
"""


def accounts_yaml():
    pid, project, user, password = ACCOUNTS["alice"]["openstack"]
    # One disksnap account (alice, an empty project on a fresh server). disksnap's user holds
    # admin, member and reader in its own project, so one user serves every credential type;
    # Tempest tells accounts apart by a hash of user and project fields, so each entry names
    # the same project differently (by name, by id, by both).
    return "\n".join([
        f"- {{username: {user}, project_name: {project}, password: {password}, roles: [member]}}",
        f"- {{username: {user}, project_name: {project}, project_id: {pid}, password: {password}, roles: [reader]}}",
        f"- {{username: {user}, project_id: {pid}, password: {password}, roles: [admin], types: [admin]}}",
        ""])


def test_tempest_volume_snapshot_modules(tmp_path):
    server = Server()
    try:
        work = tmp_path / "tempest"
        (work / "etc").mkdir(parents=True)
        (work / "logs").mkdir()
        # What `tempest init` writes, without registering a workspace in the home directory.
        import tempest
        pkg = os.path.dirname(tempest.__file__)
        (work / ".stestr.conf").write_text(
            f"[DEFAULT]\ntest_path={pkg}/test_discover\ntop_dir={os.path.dirname(pkg)}\ngroup_regex=([^\\.]*\\.)*\n")
        (work / "etc" / "tempest.conf").write_text(tempest_conf(server.url, work))
        (work / "etc" / "accounts.yaml").write_text(accounts_yaml())
        r = subprocess.run([os.path.join(BIN_DIR, "tempest"), "run", "--concurrency", "1", "--regex", REGEX],
                           cwd=work, capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, TEMPEST_CONFIG_DIR=str(work / "etc")))
        out = r.stdout + r.stderr
        results = re.findall(r"\{\d+\} (tempest\.api\.volume\.\S+?)(?:\[[^\]]*\])? (?:\[[\d.]+s\] )?\.\.\. (ok|FAILED|SKIPPED: .*)", out)
        passed = [t for t, s in results if s == "ok"]
        failed = [t for t, s in results if s == "FAILED"]
        skipped = [(t, s[len("SKIPPED: "):]) for t, s in results if s.startswith("SKIPPED")]
        print(f"\nTempest: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped")
        for t, why in skipped:
            print(f"  skip {t}: {why}")
        for t in failed:
            print(f"  FAIL {t}")
        assert not failed, out[-20000:]
        assert r.returncode == 0, out[-20000:]
        assert len(passed) >= 51, out[-5000:]
        assert sorted(t.rsplit(".", 1)[1] for t, _ in skipped) == sorted(EXPECTED_SKIPS), skipped
    finally:
        server.stop()
