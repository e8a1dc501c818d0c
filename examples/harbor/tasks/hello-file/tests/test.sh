#!/bin/bash
# Writes 1 to the reward file when /app/hello.txt holds exactly "Hello, Harbor!", else 0.
if [ "$(cat /app/hello.txt 2>/dev/null)" = "Hello, Harbor!" ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
