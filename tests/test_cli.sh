#!/usr/bin/env bash
# CLI basics: help, unknown commands, info on bad model files.
MK=${MK:-build/san/mambakit}
ok() { if [ "$1" = 0 ]; then echo "PASS cli.$2"; else echo "FAIL cli.$2 $3"; fi; }
$MK --help >/dev/null 2>&1; ok $? help
$MK nonsense >/dev/null 2>&1; [ $? = 2 ]; ok $? unknown_command
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'garbage' > "$tmp/bad.mk"
msg=$($MK info "$tmp/bad.mk" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "bad.mk" <<<"$msg"; ok $? info_rejects_garbage "rc=$rc msg=$msg"
$MK info "$tmp/missing.mk" >/dev/null 2>&1; [ $? = 1 ]; ok $? info_missing_file
