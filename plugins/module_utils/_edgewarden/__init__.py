# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This package is PRIVATE to the edgewarden.hardening collection. It may change or
# disappear at any time, even in a patch release. Target-side code: standard library
# only, and it must run on the oldest device Python the collection supports (3.8).
