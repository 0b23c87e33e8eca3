# Firecracker tier (included from tests/CMakeLists.txt). The backend is checked against
# Firecracker's official OpenAPI spec, which is not part of this repository: the tests look for it
# at <source>/../shared/firecracker-api/firecracker.yaml ($FCVM_SHARED_DIR overrides) and skip when
# it is absent.
find_package(yaml-cpp REQUIRED)
get_filename_component(fcvm_fc_root ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)

# The spec checker (test support only: the product never reads the spec).
add_library(fcvm_fc_spec STATIC ${CMAKE_CURRENT_LIST_DIR}/support/firecracker_spec.cpp)
target_include_directories(fcvm_fc_spec PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(fcvm_fc_spec PUBLIC fcvm_util nlohmann_json::nlohmann_json yaml-cpp)

# A stand-in for the firecracker binary: serves the API, checks it against the spec, plays a guest.
file(GLOB fake_fc_srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fake_firecracker/*.cpp)
add_executable(fake-firecracker ${fake_fc_srcs})
target_link_libraries(fake-firecracker PRIVATE fcvm_fc_spec fcvm_agent_proto Threads::Threads)

file(GLOB fc_test_srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/unit/test_firecracker_*.cpp)
add_executable(fcvm_firecracker_tests ${fc_test_srcs})
target_link_libraries(fcvm_firecracker_tests PRIVATE fcvm_vmm fcvm_fc_spec GTest::gtest_main)
target_compile_definitions(fcvm_firecracker_tests PRIVATE
  FCVM_SOURCE_DIR="${fcvm_fc_root}"
  FAKE_FIRECRACKER_BIN="$<TARGET_FILE:fake-firecracker>")
add_dependencies(fcvm_firecracker_tests fake-firecracker)
gtest_discover_tests(fcvm_firecracker_tests TEST_LIST fcvm_firecracker_tests_list
                     DISCOVERY_TIMEOUT 30)
# Labels "unit;firecracker": gtest_discover_tests flattens list-valued PROPERTIES, so the labels
# are set by a script CTest runs after the discovered tests are defined.
set(fcvm_fc_labels ${CMAKE_CURRENT_BINARY_DIR}/fcvm_firecracker_labels.cmake)
file(WRITE ${fcvm_fc_labels}
  "foreach(t IN LISTS fcvm_firecracker_tests_list)\n"
  "  set_tests_properties(\"\${t}\" PROPERTIES LABELS \"unit;firecracker\")\n"
  "endforeach()\n")
set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${fcvm_fc_labels})
