// The console's key of an event's caller number, as SQL over the event's JSON body
// (bridge/console_phone.h does the same in C++): full-width digits and "＋" made ASCII,
// separators dropped, "+81" read as the national "0". Schema version 2 indexes it.
#pragma once

#define CALLBRIDGE_TEL_KEY_SQL                                                                          \
  "replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace("            \
  "replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace("            \
  "replace(replace(replace(json_extract(body, '$.tel'), '０', '0'), '１', '1'), '２', '2'), "        \
  "'３', '3'), '４', '4'), '５', '5'), '６', '6'), '７', '7'), '８', '8'), '９', '9'), '＋', "  \
  "'+'), ' ', ''), '-', ''), '(', ''), ')', ''), '.', ''), '‐', ''), '−', ''), '－', ''), 'ー', " \
  "''), '（', ''), '）', ''), '　', ''), '―', ''), '+81', '0')"
