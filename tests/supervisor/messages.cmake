# SPDX-License-Identifier: Apache-2.0
# What keepalive-supervise says when the command cannot run for want of
# something outside it. Runs the real binary (and unshare, mount).
add_executable(supervise_messages_test supervise_messages_test.cc)
target_link_libraries(supervise_messages_test PRIVATE
  keepalive_test_support GTest::gtest_main)
target_compile_definitions(supervise_messages_test PRIVATE
  KEEPALIVE_SUPERVISE="$<TARGET_FILE:keepalive-supervise>")
target_compile_options(supervise_messages_test PRIVATE
  ${KEEPALIVE_SANITIZE_FLAGS})
add_dependencies(supervise_messages_test keepalive-supervise)
# Each run is bounded by run() (10 s); the TIMEOUT is the backstop.
gtest_discover_tests(supervise_messages_test
  NO_PRETTY_VALUES DISCOVERY_TIMEOUT 30
  PROPERTIES TIMEOUT 60 LABELS supervisor)
