# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of package_removal: parsers of dpkg-query, opkg and apt-get -s output, and the planner."""

from __future__ import annotations

import pytest

from ansible_collections.edgewarden.hardening.plugins.modules import package_removal as pr

DPKG = (
    "telnetd\tii \t0.17-44\n"
    "libc6:amd64\tii \t2.36-9\n"
    "nis\trc \t4.4\n"
    "rsh-server\tiF \t0.17-24\n"
    "broken line\n"
)

APT_SIMULATION = """\
NOTE: This is only a simulation!
Reading package lists...
The following packages will be REMOVED:
  rsh-frontend* rsh-server*
Remv rsh-frontend [1.0-1]
Purg rsh-server [0.17-24]
Remv telnetd:amd64 [0.17-44] [amd64]
"""


def test_parse_dpkg_query():
    assert pr.parse_dpkg_query(DPKG) == {
        "telnetd": {"status": "ii", "version": "0.17-44"},
        "libc6": {"status": "ii", "version": "2.36-9"},
        "nis": {"status": "rc", "version": "4.4"},
        "rsh-server": {"status": "iF", "version": "0.17-24"},
    }


def test_parse_opkg_installed():
    text = "busybox - 1.36.1-1\nvsftpd - 3.0.5-1\nkmod-usb-storage - 5.15.150-1\n\n"
    assert pr.parse_opkg_installed(text)["vsftpd"] == {"status": "ii", "version": "3.0.5-1"}
    assert len(pr.parse_opkg_installed(text)) == 3


def test_parse_apt_simulation():
    assert pr.parse_apt_simulation(APT_SIMULATION) == {"rsh-frontend": "1.0-1", "rsh-server": "0.17-24", "telnetd": "0.17-44"}


@pytest.mark.parametrize("purge, expected", [(False, ["telnetd", "rsh-server"]), (True, ["telnetd", "nis", "rsh-server"])])
def test_to_remove(purge, expected):
    installed = pr.parse_dpkg_query(DPKG)
    assert pr.to_remove(["telnetd", "nis", "rsh-server", "xinetd"], installed, purge) == expected


def statuses(records):
    return dict((r["id"], (r["status"], r["before"], r["after"])) for r in records)


def test_plan_refuses_dependents_unless_allowed():
    installed = pr.parse_dpkg_query(DPKG)
    simulated = pr.parse_apt_simulation(APT_SIMULATION)
    got = statuses(pr.plan(["telnetd", "rsh-server", "xinetd"], installed, simulated))
    assert got["package/telnetd"] == ("changed", "0.17-44", None)
    assert got["package/xinetd"] == ("unchanged", None, None)
    assert got["package/rsh-frontend"][0] == "error"
    allowed = statuses(pr.plan(["telnetd", "rsh-server"], installed, simulated, allow_dependents=True))
    assert allowed["package/rsh-frontend"] == ("changed", "1.0-1", None)


def test_plan_without_simulation_and_idempotent():
    installed = pr.parse_opkg_installed("vsftpd - 3.0.5-1\n")
    assert statuses(pr.plan(["vsftpd"], installed))["package/vsftpd"] == ("changed", "3.0.5-1", None)
    assert statuses(pr.plan(["vsftpd"], {}))["package/vsftpd"] == ("unchanged", None, None)
    # config files left behind: nothing to do unless purging
    rc_only = pr.parse_dpkg_query("nis\trc \t4.4\n")
    assert statuses(pr.plan(["nis"], rc_only))["package/nis"] == ("unchanged", None, None)
