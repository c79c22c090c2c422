# Runs the built command-line tool and writes what it prints to a file: how the build makes
# the man page and the shell completion scripts from the tool's own help text and command
# table (so they cannot drift from it).
#   cmake -DTOOL=build/tenantguard -DARG1=help [-DARG2=--man] -DOUT=file [-DRULES=dir]
#         -P tool_output.cmake
# RULES is the default rules directory the page names (the installed one, not the build's).
if(DEFINED RULES)
  set(ENV{TENANTGUARD_RULES} "${RULES}")
endif()
set(args ${ARG1})
if(DEFINED ARG2)
  list(APPEND args ${ARG2})
endif()
execute_process(COMMAND "${TOOL}" ${args} OUTPUT_FILE "${OUT}.tmp" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE "${OUT}.tmp")
  message(FATAL_ERROR "${TOOL} ${args} failed (${rc})")
endif()
file(RENAME "${OUT}.tmp" "${OUT}")
