from aslfr.commands.convert import main

main()
