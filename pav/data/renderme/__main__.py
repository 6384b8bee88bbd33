from .convert import main

main()
