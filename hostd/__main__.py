from hostd.cli.main import main

main()
