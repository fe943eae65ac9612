# One helper per kind of target. Each gives the target a relay:: alias and,
# for libraries, install and export rules.

# relay_add_library(NAME SOURCES ... [PUBLIC_INCLUDE dir] [DEPS ...] [PRIVATE_DEPS ...])
# Builds shared library relay_<NAME> with alias relay::<NAME>.
function(relay_add_library name)
  cmake_parse_arguments(ARG "" "PUBLIC_INCLUDE" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target relay_${name})
  add_library(${target} SHARED ${ARG_SOURCES})
  add_library(relay::${name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name}
                        OUTPUT_NAME relay_${name} VERSION ${PROJECT_VERSION})
  if(ARG_PUBLIC_INCLUDE)
    target_include_directories(${target} PUBLIC
      $<BUILD_INTERFACE:${ARG_PUBLIC_INCLUDE}>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
    install(DIRECTORY ${ARG_PUBLIC_INCLUDE}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
            PATTERN "internal" EXCLUDE)
  endif()
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # CAF's option meta objects stay local (see cmake/caf_local.map).
    target_link_options(${target} PRIVATE
      "-Wl,--version-script=${PROJECT_SOURCE_DIR}/cmake/caf_local.map")
    set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS
                 ${PROJECT_SOURCE_DIR}/cmake/caf_local.map)
  endif()
  install(TARGETS ${target} EXPORT relayTargets
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endfunction()

# relay_add_transport(NAME SOURCES ... [DEPS ...]): a transport folder adds
# its sources to relay::transports, and the libraries they need (imported
# targets must be GLOBAL, see transports/tcp/CMakeLists.txt) to its private
# link dependencies (see transports/CMakeLists.txt).
function(relay_add_transport name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  foreach(src ${ARG_SOURCES})
    set_property(GLOBAL APPEND PROPERTY RELAY_TRANSPORT_SOURCES
                 ${CMAKE_CURRENT_SOURCE_DIR}/${src})
  endforeach()
  set_property(GLOBAL APPEND PROPERTY RELAY_TRANSPORT_DEPS ${ARG_DEPS})
endfunction()

# relay_add_test(NAME SOURCES ... [DEPS ...] [LABELS ...] [RESOURCE_LOCK R])
# A GoogleTest executable registered with ctest via gtest_discover_tests.
# RESOURCE_LOCK: ctest runs no two tests holding R at once (mqueue: the
# tests whose POSIX queues would together pass the user's RLIMIT_MSGQUEUE).
function(relay_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT;RESOURCE_LOCK" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE GTest::gtest GTest::gtest_main ${ARG_DEPS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin/tests)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  set(lock)
  if(ARG_RESOURCE_LOCK)
    set(lock RESOURCE_LOCK ${ARG_RESOURCE_LOCK})
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30
                       PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}"
                                  ${lock})
endfunction()

# relay_add_sample(NAME SOURCES ... [DEPS ...]): an executable in build/bin.
function(relay_add_sample name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE relay::framework ${ARG_DEPS})
  install(TARGETS ${name} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endfunction()
