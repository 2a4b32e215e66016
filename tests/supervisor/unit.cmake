# SPDX-License-Identifier: Apache-2.0
# Unit tests of the supervisor's pure parts (command line, strategy choice,
# filter construction, the programs compiled in against libseccomp), plus
# one test that installs a filter from build_filter in a forked child and
# checks which calls it traps, and OptionRing on real sockets against
# apply_to.
add_executable(supervisor_unit_test
  cli_test.cc
  command_path_test.cc
  strategy_test.cc
  filter_test.cc
  filter_arch_test.cc
  launch_test.cc
  task_cache_test.cc
  log_test.cc
  target_test.cc
  option_ring_test.cc
  server_test.cc
  setting_flags_test.cc
)
target_link_libraries(supervisor_unit_test PRIVATE
  keepalive_supervisor_dynamic keepalive_filter_rules GTest::gtest_main)
target_compile_definitions(supervisor_unit_test PRIVATE
  KEEPALIVE_TEST_VERSION="${PROJECT_VERSION}")
target_compile_options(supervisor_unit_test PRIVATE ${KEEPALIVE_SANITIZE_FLAGS})
gtest_discover_tests(supervisor_unit_test
  NO_PRETTY_VALUES DISCOVERY_TIMEOUT 30
  PROPERTIES TIMEOUT 60 LABELS supervisor)
