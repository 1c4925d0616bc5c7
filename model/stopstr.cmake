# Stop strings (model/stopstr.h): part of mp_model so `moepool run` and the server share them.
target_sources(mp_model PRIVATE ${CMAKE_CURRENT_LIST_DIR}/stopstr.c)
add_executable(stopstr_test ${CMAKE_CURRENT_LIST_DIR}/stopstr_test.c)
target_link_libraries(stopstr_test PRIVATE mp_model)
add_test(NAME stopstr_test COMMAND stopstr_test)
