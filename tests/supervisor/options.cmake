# SPDX-License-Identifier: Apache-2.0
# Integration tests: keepalive-supervise puts the options on real targets'
# sockets (a static raw-syscall helper, busybox nc, threads, descendants,
# signal storms, credential and namespace changes, a dead peer in a private
# network namespace, older kernels' fallbacks, daemonizing commands and
# nginx), read back from the kernel from outside the target.

add_library(options_harness STATIC options_harness.cc)
target_link_libraries(options_harness PUBLIC keepalive_test_support
  keepalive_syscalls)
target_compile_definitions(options_harness PRIVATE
  KEEPALIVE_SUPERVISE_PATH="$<TARGET_FILE:keepalive-supervise>"
  KEEPALIVE_RAW_TCP_PATH="$<TARGET_FILE:raw_tcp>"
  KEEPALIVE_SOCKOPT_PROBE_PATH="$<TARGET_FILE:sockopt_probe>"
  KEEPALIVE_FAKE_OLD_KERNEL_PATH="$<TARGET_FILE:fake_old_kernel>")
target_compile_options(options_harness PRIVATE ${KEEPALIVE_SANITIZE_FLAGS})
add_dependencies(options_harness keepalive-supervise raw_tcp sockopt_probe
  fake_old_kernel)

# name -> ctest TIMEOUT (seconds) for each of its tests. Every wait inside a
# test has its own, shorter bound; these are the backstop.
set(KEEPALIVE_OPTIONS_TESTS
  supervise_options_test 60
  supervise_busybox_test 60
  supervise_threads_test 90
  supervise_signals_test 180
  supervise_identity_test 60
  supervise_arch_test 60
  supervise_cgroup_test 60
  supervise_exec_race_test 60
  supervise_dead_peer_test 120
  supervise_fallbacks_test 180
  supervise_addfd_test 120
  supervise_daemon_test 120
  supervise_limits_test 120
  supervise_forward_test 60
  attach_test 60
  follow_test 90
)
while(KEEPALIVE_OPTIONS_TESTS)
  list(POP_FRONT KEEPALIVE_OPTIONS_TESTS name timeout)
  add_executable(${name} ${name}.cc)
  target_link_libraries(${name} PRIVATE options_harness GTest::gtest_main)
  target_compile_options(${name} PRIVATE ${KEEPALIVE_SANITIZE_FLAGS})
  gtest_discover_tests(${name}
    NO_PRETTY_VALUES DISCOVERY_TIMEOUT 30
    PROPERTIES TIMEOUT ${timeout} LABELS supervisor)
endwhile()

# The Python program with sockets of every role that --pid attaches to.
target_compile_definitions(attach_test PRIVATE
  KEEPALIVE_ATTACH_TARGET_PATH="${PROJECT_SOURCE_DIR}/tests/helpers/attach_target.py")

# The clients that never stop connecting, which --follow attaches to.
if(TARGET go_connect_loop)
  set(go_client ${KEEPALIVE_HELPER_DIR}/go_connect_loop)
  add_dependencies(follow_test go_connect_loop)
else()
  set(go_client "")
endif()
target_compile_definitions(follow_test PRIVATE
  KEEPALIVE_CONNECT_LOOP_PATH="$<TARGET_FILE:connect_loop>"
  KEEPALIVE_GO_CONNECT_LOOP_PATH="${go_client}")
add_dependencies(follow_test connect_loop)

# The 32-bit helper, where it could be built (tests/helpers).
if(TARGET drop32)
  target_compile_definitions(supervise_arch_test PRIVATE
    KEEPALIVE_DROP32_PATH="$<TARGET_FILE:drop32>")
  add_dependencies(supervise_arch_test drop32)
endif()

# The fd-limit test runs the static supervisor too: its code runs from the
# first instruction, with no dynamic loader opening files before it.
if(TARGET keepalive-supervise-static)
  target_compile_definitions(supervise_limits_test PRIVATE
    KEEPALIVE_SUPERVISE_STATIC_PATH="$<TARGET_FILE:keepalive-supervise-static>")
  add_dependencies(supervise_limits_test keepalive-supervise-static)
endif()
