from hoop_sessions.cli import main

main()
