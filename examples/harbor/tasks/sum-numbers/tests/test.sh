#!/bin/bash
# Writes 1 to the reward file when /app/sum.txt holds the sum of /app/numbers.txt (56), else 0.
if [ "$(tr -d '[:space:]' < /app/sum.txt 2>/dev/null)" = "56" ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
