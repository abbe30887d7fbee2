# Writes ${OUT}: results/schema.sql as a C string, so the binary carries the schema it creates.
file(READ ${SRC} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from results/schema.sql by cmake/embed_schema.cmake */\nstatic const char store_schema_v1[] = {${bytes} 0x00};\n")
