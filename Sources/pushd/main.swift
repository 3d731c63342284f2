print("pushd")
