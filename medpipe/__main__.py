from medpipe.cli import main

main()
