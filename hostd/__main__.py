from hostd.cli import main

main()
