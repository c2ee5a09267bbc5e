from tcpwatch.cli.app import main

main()
