from hoop_sessions.cli.main import main

main()
