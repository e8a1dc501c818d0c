#!/bin/bash
awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n") }' /app/sentence.txt > /app/reversed.txt
