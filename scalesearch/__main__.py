from .launch import main

if __name__ == "__main__":  # not again in a multiprocessing child, which imports this module
    main()
