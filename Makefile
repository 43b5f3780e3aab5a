# edgewarden.hardening: every entry point. Run as root on Debian 12; each target installs
# what it needs first (tools/bootstrap is quick when everything is already there).
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
export EW_LAB_DIR ?= /var/tmp/edgewarden-lab
export EW_VENV ?= /var/tmp/edgewarden-venv
export EW_VENV_OLDEST ?= /var/tmp/edgewarden-venv-oldest
LAB := $(ROOT)/tests/lab/lab

.PHONY: help setup demo audit test lint sanity units molecule lab-up lab-down lab-status build clean

help:
	@echo "make demo      set up, start the lab, converge the fleet through the bastion, inject drift, detect and remediate it, print the reports"
	@echo "make test      the whole suite: lint, sanity, unit tests, Molecule on the lab"
	@echo "make lab-up | lab-down | lab-status"
	@echo "make lint | sanity | units | molecule | build"

setup:
	@$(ROOT)/tools/bootstrap

demo: setup
	@$(ROOT)/tools/demo

audit:
	@$(ROOT)/tools/run-playbook playbooks/audit.yml
	@echo; echo "Fleet posture (also in $(EW_LAB_DIR)/reports/audit.json):"; cat $(EW_LAB_DIR)/reports/audit.txt

test:
	@$(ROOT)/tools/bootstrap --oldest
	@$(ROOT)/tests/run-all

lint: setup
	@$(ROOT)/tests/run-all lint

sanity: setup
	@$(ROOT)/tests/run-all sanity

units: setup
	@$(ROOT)/tests/run-all units

molecule: setup
	@$(ROOT)/tests/run-all molecule

lab-up: setup
	@$(LAB) up

lab-down:
	@$(LAB) down

lab-status:
	@$(LAB) status

build: setup
	@$(ROOT)/tests/run-all build
