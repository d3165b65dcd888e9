# cargo-shard Makefile fragment, as printed by `cargo shard makefile`. Include it after your
# own rules (`include cargo-shard.mk`): with SHARD_HOSTS set, `make test-integration` runs
# through `cargo shard exec` on those hosts, moby-style: every shard runs this same target
# with its share of the tests in $TESTFLAGS (as `-check.f '^(S.TestA|S.TestB)$'`), and the
# results are merged into one JUnit (target/shard/junit.xml). Without SHARD_HOSTS, and inside
# a shard, the target runs exactly as before. GNU make notes that this fragment's recipe
# overrides yours while SHARD_HOSTS is set.
#
#   SHARD_HOSTS=ci/hosts.toml make test-integration
#
# Settings (override them before the include or on the command line):
#   SHARD_TARGET         the target to shard (default test-integration)
#   SHARD_LIST           lists the keys, one per line; $TESTFLAGS reaches it, so a filter
#                        given the usual way narrows what is sharded
#   SHARD_FILTER_FORMAT  how a shard's keys become $TESTFLAGS ({regex} is `^(k1|k2)$`)
#   SHARD_ARGS           more cargo shard options (--shards N, --out-dir DIR, --retries N…)
#   CARGO_SHARD          the command (default `cargo shard`)

SHARD_TARGET ?= test-integration
SHARD_LIST ?= $(MAKE) -s list-integration
SHARD_FILTER_FORMAT ?= -check.f {regex}
SHARD_ARGS ?=
CARGO_SHARD ?= cargo shard

ifneq ($(SHARD_HOSTS),)
ifeq ($(CARGO_SHARD_RUN),)
.PHONY: $(SHARD_TARGET)
$(SHARD_TARGET):
	$(CARGO_SHARD) exec --hosts '$(SHARD_HOSTS)' --list '$(SHARD_LIST)' \
		--filter-env TESTFLAGS --filter-format '$(SHARD_FILTER_FORMAT)' $(SHARD_ARGS) \
		-- $(MAKE) $(SHARD_TARGET)
endif
endif
