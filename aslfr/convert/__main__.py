from aslfr.convert.cli import main

main()
