from aslfr.bench.cli import main

main()
