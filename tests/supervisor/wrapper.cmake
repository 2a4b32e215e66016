# SPDX-License-Identifier: Apache-2.0
# keepalive-supervise as a well-behaved wrapper: exit statuses, signals,
# stdio, environment, signal mask, death of the supervisor, io_uring,
# --check, and running under a profile that refuses pidfd_getfd. Runs the
# real binary and real helpers.
add_executable(supervise_wrapper_test supervise_wrapper_test.cc)
target_link_libraries(supervise_wrapper_test PRIVATE
  keepalive_test_support keepalive_syscalls GTest::gtest_main)
target_compile_definitions(supervise_wrapper_test PRIVATE
  KEEPALIVE_SUPERVISE="$<TARGET_FILE:keepalive-supervise>"
  IO_URING_REPORT="$<TARGET_FILE:io_uring_report>"
  DENY_SYSCALLS="$<TARGET_FILE:deny_syscalls>")
target_compile_options(supervise_wrapper_test PRIVATE
  ${KEEPALIVE_SANITIZE_FLAGS})
add_dependencies(supervise_wrapper_test
  keepalive-supervise io_uring_report deny_syscalls)
# Each test bounds its own waits (20 s at most); the TIMEOUT is the backstop.
gtest_discover_tests(supervise_wrapper_test
  NO_PRETTY_VALUES DISCOVERY_TIMEOUT 30
  PROPERTIES TIMEOUT 120 LABELS supervisor)
