#!/bin/bash
# Writes {"reward": 1|0, "exact_line": 1|0} to reward.json: the words reversed, and nothing else on the line.
expected="honest optimizers keep splits out held"
actual="$(cat /app/reversed.txt 2>/dev/null)"
if [ "$actual" = "$expected" ]; then words=1; else words=0; fi
if [ "$(wc -l < /app/reversed.txt 2>/dev/null)" = "1" ]; then line=1; else line=0; fi
printf '{"reward": %s, "exact_line": %s}\n' "$words" "$line" > /logs/verifier/reward.json
